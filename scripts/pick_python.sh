#!/usr/bin/env bash
# Print the first Python ≥ 3.11 that this user can actually run and that can make a venv.
# Why: on some machines `python3` is a pyenv shim inside root's home that other users cannot execute;
# the system interpreter then makes the venv. `make install` says which one it picked.
for cand in ${PY_CANDIDATES:-python3.11 python3 python3.12 python3.13 /usr/bin/python3.11 /usr/bin/python3 /usr/local/bin/python3}; do
  exe=$("$cand" -c 'import sys, venv, ensurepip; assert sys.version_info >= (3, 11); print(sys.executable)' 2>/dev/null) \
    && [ -n "$exe" ] && { echo "$exe"; exit 0; }
done
echo "no usable Python ≥ 3.11 (with venv and ensurepip) found on PATH for user $(id -un); install python3.11-venv" >&2
exit 1
