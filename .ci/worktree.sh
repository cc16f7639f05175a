#!/usr/bin/env bash
# Did the test suite leave files in the work tree? (Tests write only under pytest's tmp_path.)
#   bash .ci/worktree.sh snapshot FILE   # before the tests: the tree's state into FILE
#   bash .ci/worktree.sh compare FILE    # after: exit 1, listing them, if files appeared or changed
# Every file counts, ignored ones (runs/, features/, ...) included; bytecode caches aside.
# Outside a git work tree both do nothing.
set -euo pipefail
state() {
  git status --porcelain --ignored --untracked-files=all | grep -vE '(__pycache__/|\.pyc$)' | sort || true
}
[ "$(git rev-parse --is-inside-work-tree 2> /dev/null || echo false)" = true ] || exit 0
case "$1" in
  snapshot) state > "$2" ;;
  compare)
    made=$(comm -13 "$2" <(state))
    if [ -n "$made" ]; then
      echo "the tests created or changed files in the work tree (they write only under tmp_path):"
      echo "$made"
      exit 1
    fi ;;
  *) echo "usage: $0 snapshot|compare FILE" >&2; exit 2 ;;
esac
