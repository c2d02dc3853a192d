"""Datasets (HumanEval, MBPP, CodeContests, APPS), PR/AC metrics and the ``bdc eval`` loop."""
