#!/bin/bash
# usage: commit.sh "message" -- newfiles... -- patches...
set -e
cd /work/main
msg="$1"; shift; shift
files=(); patches=()
while [ "$1" != "--" ] && [ $# -gt 0 ]; do files+=("$1"); shift; done
shift || true
patches=("$@")
export GIT_INDEX_FILE=/tmp/mine/index.tmp
rm -f $GIT_INDEX_FILE
git read-tree HEAD
for p in "${patches[@]}"; do git apply --cached "$p"; done
[ ${#files[@]} -gt 0 ] && git add -- "${files[@]}"
git diff --cached --stat
git commit -q -m "$msg"
unset GIT_INDEX_FILE
# bring the shared index up to date for these paths only
[ ${#files[@]} -gt 0 ] && git add -- "${files[@]}"
for p in "${patches[@]}"; do git apply --cached "$p" || echo "REAL INDEX: could not apply $p"; done
git log --oneline -1
