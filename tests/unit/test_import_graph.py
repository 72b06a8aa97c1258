"""The import graph of coderm's packages has no cycle.

`lint-imports` (pyproject.toml) checks the layers and the cycles inside each package; a cycle that
runs through two packages (agents -> orchestrator -> agents) is only visible on the whole graph.
grimp reads function-level imports too, so none can hide a cycle.
"""

import grimp


def test_no_module_imports_itself_through_others() -> None:
    graph = grimp.build_graph("orchestrator", "agents", "sandbox")
    cycles = []
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back is not None:
                cycles.append(" -> ".join((module, *back)))
    assert cycles == []
