"""The sandbox: every solution x unit-test pair, run in a jail, with a verdict nobody can fake.

Layout
    executor.py   the matrix over a pool of jails (identical programs run once)
    jail.py       the worker's handle on one jail process: start, send a solution, read results
    isolation.py  how a jail starts (bubblewrap's command line) from the policy
    policy.py     the host's sandbox policy, as data (CODERM_SANDBOX_*), and the syscall deny-lists
    seccomp.py    those deny-lists compiled to BPF (in the worker; the jail never loads ctypes)
    cgroups.py    a cgroup per jail where one is writable: memory, processes, one CPU
    programs.py   reading untrusted programs without running them: bounded parse and compile
    _jail.py      the jail itself (runs inside the sandbox, standard library only)
    _jailsys.c    the jail's native half: syscalls Python lacks, the verdict, the audit hook
    tasks.py      the Celery task;  cli.py: `coderm sandbox`;  outcomes.py: what a pair comes to

The threat model. The solution's top-level code, the code under test and everything they start
are hostile and share a process with the harness that runs the test. They may try to forge a pass,
to change another pair's verdict, or to outlast their limits. The unit test's own code is the
specification, not an adversary (it comes from the reward model).

The design, and why.

* The outer walls are entered once per jail (a new netns per run costs up to 0.3 s, serialised by
  the kernel): namespaces, a read-only root, no network, no /proc, a cgroup, seccomp (isolation.py).

* The verdict is kept out of reach of the process it judges, rather than hidden inside it. The
  jail (pid 1, trusted: it never runs untrusted code) forks a *pair child* per pair; the child runs
  the solution and the test class through `_jail._drive`. Only `_drive`'s one call of the native
  `write_verdict` can produce a verdict: the per-pair nonce that authenticates it lives in C memory
  and never becomes a Python object; the call is checked by the identity of the calling frame and
  of the calling instruction, once; and the jail accepts it only from the pair child's own pid
  (SCM_CREDENTIALS), not from a process it forked. So frames need not be hidden (honest code uses
  them) and whatever untrusted code reads of the harness is worth nothing. What would let it
  *change* the harness is refused: trace and profile functions (they rewrite a running frame's
  locals), new code objects and marshal (arbitrary memory), ctypes and other native code, other
  programs, threads and signal handlers (they would run at any instruction of the harness).

* A pass needs every test method the test's *source* defines to have been called by `_drive` and
  to have returned. Skips, expected failures and unittest's ways of stopping a run are not passes
  (a deliberate difference from `wasSuccessful()`: a policy must not learn to skip its tests).
  unittest's runner (loader, suite, result) decides nothing.

* The solution's top-level changes to the interpreter are undone before the test runs: module
  globals, unittest's classes and closures, builtins. unittest's and the builtins' bindings are
  checked after every test method; a change is an error. The test sees the solution's names over
  its own copy of the builtins.

* Every pair starts from a clean slate: a fresh fork of the pristine jail, no process of an earlier
  pair (killed), fresh tmpfs mounts when the pair changed them (nothing untrusted is ever walked),
  and no System V or POSIX message-queue IPC at all. Every buffer it feeds is bounded and every
  read of it runs under its deadline.

What the sandbox does not claim. The test hands control to the code under test: that code can
return objects that lie (an `__eq__` that always says yes), read the test's own objects, or patch
a shared module while a test method runs and put it back before the method returns. The paper's
harness, which runs `solution + test` as one program, has the same exposure; a test that checks
types and values closely is the defence. Exploiting a memory-safety bug of CPython itself is out of
scope of the in-process walls (the outer walls still hold). Without a writable cgroup (an ordinary
user without a delegated subtree) memory is bounded per process (RLIMIT_AS), not per pair.
`isolation=rlimits` has no mount namespace: it refuses /proc paths in the audit hook, but cannot
hide /proc as the namespaces do, and a pair there can write the host's /tmp.
"""
