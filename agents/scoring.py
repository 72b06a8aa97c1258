"""What the paper reports, as pure functions: accuracies and the quality of the unit tests (DESIGN §2).

Per problem:
  vanilla    mean correctness of all N samples (an invalid sample is an incorrect one);
  vanilla over valid samples: mean correctness of the samples with exactly one code block, the
             only ones the authors' extract_solution.py keeps (their annotated files and
             calculate_result see no other): this is the paper's vanilla;
  best_of_n  expected correctness of the voter's pick: mean correctness over the final tie set;
  oracle     whether any sample is correct.
Test quality, with positives = solutions correct by ground truth, counts pooled over problems:
  individual: a solution is predicted correct iff it passes the one test (every solution x test);
  combined:   a solution is predicted correct iff its pass count is the problem's maximum.
  Acc = (TP+TN)/all, F1 = 2PR/(P+R), and FAR = FP/(FP+TP), FRR = FN/(FN+TN) as the paper prints
  them (App. D); the textbook false positive and negative rates, FP/(FP+TN) and FN/(FN+TP), are
  reported beside them under their own names. A rate whose denominator is zero is 0.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

from agents.selection import STRATEGIES, SelectionStrategy, tie_sets, vote


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


@dataclass(frozen=True)
class Confusion:
    """Counts of a binary prediction (passes the test(s)) against the truth (is correct)."""

    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(self.tp + other.tp, self.fp + other.fp, self.tn + other.tn, self.fn + other.fn)

    @classmethod
    def of(cls, predicted: Iterable[bool], actual: Iterable[bool]) -> Confusion:
        tp = fp = tn = fn = 0
        for guess, truth in zip(predicted, actual, strict=True):
            if guess and truth:
                tp += 1
            elif guess:
                fp += 1
            elif truth:
                fn += 1
            else:
                tn += 1
        return cls(tp, fp, tn, fn)

    def quality(self) -> TestQuality:
        precision, recall = _ratio(self.tp, self.tp + self.fp), _ratio(self.tp, self.tp + self.fn)
        return TestQuality(
            acc=_ratio(self.tp + self.tn, self.tp + self.fp + self.tn + self.fn),
            f1=_ratio(2 * precision * recall, precision + recall),
            far=_ratio(self.fp, self.fp + self.tp),
            frr=_ratio(self.fn, self.fn + self.tn),
            false_positive_rate=_ratio(self.fp, self.fp + self.tn),
            false_negative_rate=_ratio(self.fn, self.fn + self.tp),
        )


@dataclass(frozen=True)
class TestQuality:
    """Fractions in [0, 1]; `far`/`frr` as the paper defines them, the textbook rates by name."""

    __test__ = False  # not a pytest class, despite the name

    acc: float
    f1: float
    far: float
    frr: float
    false_positive_rate: float
    false_negative_rate: float

    def as_percentages(self) -> dict[str, float]:
        return {name: round(100 * value, 2) for name, value in asdict(self).items()}


@dataclass(frozen=True)
class ProblemScore:
    samples: int
    correct_samples: int
    vanilla: float
    best_of_n: float
    oracle: bool
    individual: Confusion
    combined: Confusion
    vanilla_valid: float = 0.0
    best_of_n_by_strategy: dict[SelectionStrategy, float] = field(default_factory=dict)
    """Best-of-N of every selection strategy on the same matrix (the pick's own is `best_of_n`)."""


def score_problem(
    sample_correct: Sequence[bool],
    candidates: Sequence[int],
    pass_matrix: Sequence[Sequence[bool]],
    tie_set: Sequence[int],
) -> ProblemScore:
    """Score one problem.

    `sample_correct` covers every sample (invalid ones are False); `candidates` are the positions of
    the valid samples, which are the rows of `pass_matrix` (columns: distinct valid tests);
    `tie_set` holds row numbers, the voter's final tie set.
    """
    truth = [sample_correct[position] for position in candidates]
    individual = Confusion.of(
        (passed for row in pass_matrix for passed in row),
        (truth[r] for r, row in enumerate(pass_matrix) for _ in row),
    )
    counts = [sum(row) for row in pass_matrix]
    best = max(counts, default=0)
    combined = Confusion.of((count == best for count in counts), truth)
    return ProblemScore(
        samples=len(sample_correct),
        correct_samples=sum(sample_correct),
        vanilla=_ratio(sum(sample_correct), len(sample_correct)),
        vanilla_valid=_ratio(sum(truth), len(truth)),
        best_of_n=_ratio(sum(truth[r] for r in tie_set), len(tie_set)),
        oracle=any(sample_correct),
        individual=individual,
        combined=combined,
        best_of_n_by_strategy=best_of_n_by_strategy(truth, pass_matrix),
    )


def best_of_n_by_strategy(
    truth: Sequence[bool], pass_matrix: Sequence[Sequence[bool]]
) -> dict[SelectionStrategy, float]:
    """Each strategy's best-of-N (mean correctness over its tie set); `truth` is each row's."""
    if not pass_matrix:
        return dict.fromkeys(STRATEGIES, 0.0)
    scores = {}
    for strategy in STRATEGIES:
        tie_set = tie_sets(pass_matrix, strategy)[1]
        scores[strategy] = _ratio(sum(truth[r] for r in tie_set), len(tie_set))
    return scores


@dataclass(frozen=True)
class JobMetrics:
    """A job's figures over its scored problems (percentages in `to_json`)."""

    problems: int
    vanilla: float
    best_of_n: float
    oracle: float
    individual: TestQuality
    combined: TestQuality
    vanilla_valid: float = 0.0
    best_of_n_by_strategy: dict[SelectionStrategy, float] = field(default_factory=dict)
    """Every selection strategy's best-of-N on the same matrices and draws (`best_of_n` is the pick's)."""

    def to_json(self) -> dict[str, object]:
        return {
            "problems": self.problems,
            "vanilla": round(100 * self.vanilla, 2),
            "vanilla_valid": round(100 * self.vanilla_valid, 2),
            "best_of_n": round(100 * self.best_of_n, 2),
            "oracle": round(100 * self.oracle, 2),
            "individual": self.individual.as_percentages(),
            "combined": self.combined.as_percentages(),
        }


def job_metrics(scores: Sequence[ProblemScore]) -> JobMetrics:
    """Accuracies averaged over problems; test quality from counts pooled over problems."""
    individual = sum((s.individual for s in scores), Confusion())
    combined = sum((s.combined for s in scores), Confusion())
    return JobMetrics(
        problems=len(scores),
        vanilla=_ratio(sum(s.vanilla for s in scores), len(scores)),
        vanilla_valid=_ratio(sum(s.vanilla_valid for s in scores), len(scores)),
        best_of_n_by_strategy={
            strategy: _ratio(sum(s.best_of_n_by_strategy.get(strategy, 0.0) for s in scores), len(scores))
            for strategy in STRATEGIES
        },
        best_of_n=_ratio(sum(s.best_of_n for s in scores), len(scores)),
        oracle=_ratio(sum(s.oracle for s in scores), len(scores)),
        individual=individual.quality(),
        combined=combined.quality(),
    )


def mean_metrics(runs: Sequence[JobMetrics]) -> JobMetrics:
    """The mean of several draws (the paper's repeated test subsets)."""

    def mean(values: Iterable[float]) -> float:
        items = list(values)
        return _ratio(sum(items), len(items))

    def mean_quality(qualities: Sequence[TestQuality]) -> TestQuality:
        return TestQuality(**{k: mean(getattr(q, k) for q in qualities) for k in asdict(qualities[0])})

    return JobMetrics(
        problems=runs[0].problems,
        vanilla=mean(r.vanilla for r in runs),
        vanilla_valid=mean(r.vanilla_valid for r in runs),
        best_of_n_by_strategy={
            strategy: mean(r.best_of_n_by_strategy.get(strategy, 0.0) for r in runs)
            for strategy in STRATEGIES
        },
        best_of_n=mean(r.best_of_n for r in runs),
        oracle=mean(r.oracle for r in runs),
        individual=mean_quality([r.individual for r in runs]),
        combined=mean_quality([r.combined for r in runs]),
    )


@dataclass(frozen=True)
class ScoredProblem:
    """What re-scoring needs of a problem, read once from the database."""

    task_id: str
    sample_correct: list[bool]
    candidates: list[int]
    pass_matrix: list[list[bool]] = field(default_factory=list)
    slots: int = 0
    """Unit tests the problem asked for (the reference's M); at least its distinct valid tests."""

    @property
    def distinct_tests(self) -> int:
        return len(self.pass_matrix[0]) if self.pass_matrix else 0

    @property
    def test_slots(self) -> int:
        return max(self.slots, self.distinct_tests)


def draw_subset(problem: ScoredProblem, n_solutions: int, n_slots: int, rng: random.Random) -> ScoredProblem:
    """The first `n_solutions` samples, and the tests in `n_slots` of the problem's test slots.

    As the authors' calculate_result draws `ut_num` of its 100 unit-test ids: the distinct valid
    tests fill some slots, and a slot whose sample was invalid or a duplicate is an empty test that
    no solution passes (it changes no vote, so it is simply left out of the subset).
    """
    distinct = problem.distinct_tests
    slots = list(range(problem.test_slots))
    rng.shuffle(slots)
    columns = [slot for slot in slots[:n_slots] if slot < distinct]
    rows = [r for r, position in enumerate(problem.candidates) if position < n_solutions]
    return ScoredProblem(
        task_id=problem.task_id,
        sample_correct=problem.sample_correct[:n_solutions],
        candidates=[problem.candidates[r] for r in rows],
        pass_matrix=[[problem.pass_matrix[r][c] for c in columns] for r in rows],
        slots=n_slots,
    )


def rescore(
    problems: Sequence[ScoredProblem],
    n_solutions: int,
    n_slots: int | Sequence[int],
    repeats: int,
    seed: int,
    strategy: SelectionStrategy = "paper",
) -> tuple[JobMetrics, list[ProblemScore]]:
    """Vote again on `repeats` random draws of test slots, as the paper's calculate_result does.

    `n_slots` is the same for every problem, or one count per problem (a scaled allocation).
    Returns the mean job metrics and, per problem, the scores of the first draw.
    """
    counts = [n_slots] * len(problems) if isinstance(n_slots, int) else list(n_slots)
    first: list[ProblemScore] = []
    runs: list[JobMetrics] = []
    for repeat in range(repeats):
        rng = random.Random(f"{seed}/{repeat}")
        scores = []
        for problem, count in zip(problems, counts, strict=True):
            subset = draw_subset(problem, n_solutions, count, rng)
            tie_break = random.Random(f"{seed}/{repeat}/{problem.task_id}")
            decision = vote(subset.pass_matrix, tie_break, strategy)
            scores.append(
                score_problem(subset.sample_correct, subset.candidates, subset.pass_matrix, decision.tie_set)
            )
        if repeat == 0:
            first = scores
        runs.append(job_metrics(scores))
    return mean_metrics(runs), first
