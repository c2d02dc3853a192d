"""Deep mode: MC-Tree-of-Agents (BDC paper §4.1) over several LLMs, judged in the sandbox.

Modules: ``tree`` (nodes and the pure arithmetic: PUCB / var_p_ucb, backup, prune test, final answer),
``search`` (the search over an injected ``Team`` and ``Evaluator``), ``agents`` (prompts and tolerant
parsing), ``llm`` (budgets, response cache, retries, concurrency), ``providers/`` (openai / anthropic SDKs),
``runner`` (the engine API used by the CLI and the TUI), ``events``, ``evaluate`` + ``trace`` (sandbox
adapter and LDB-style block traces), ``problem_tests``, ``exports``, ``bench``.
Nothing here imports an SDK at module level.
"""
