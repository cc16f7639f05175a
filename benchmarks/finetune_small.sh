#!/usr/bin/env bash
# The fine-tuning walk-through of docs/train.md, measured: 5 ESC-50 classes x 8 clips (fold 1) as
# "my_sounds", the other 24 clips of each class (folds 2-4) as new clips. Fine-tunes from a network
# (frozen trunk, last layer, everything), tags the new clips with each result, and compares with
# fit-svm on the same clips. Everything is written under WORK (symbolic links to the ESC-50 files,
# run directories, the feature cache); nothing in the repository.
#
#   bash benchmarks/finetune_small.sh ESC50_DIR WORK [INIT]      # INIT: default (the embedded network)
set -euo pipefail
esc50=$(cd "$1" && pwd)
work=$2
init=${3:-default}
classes=(dog rooster rain church_bells keyboard_typing)
mkdir -p "$work"
cd "$work"

# 1. The folders (what docs/train.md tells a reader to type)
for c in "${classes[@]}"; do
  mkdir -p "my_sounds/$c" "new_clips/$c"
  awk -F, -v c="$c" '$4 == c && $2 == 1 {print $1}' "$esc50/meta/esc50.csv" |
    while read -r f; do ln -sf "$esc50/audio/$f" "my_sounds/$c/"; done
  awk -F, -v c="$c" '$4 == c && $2 >= 2 {print $1}' "$esc50/meta/esc50.csv" |
    while read -r f; do ln -sf "$esc50/audio/$f" "new_clips/$c/"; done
done

# top-1 accuracy of `soundnet tag --csv` output whose clips sit in folders named after their class
accuracy() {
  awk -F, 'NR > 1 && $3 == "clip" && $7 == 1 {
      n = split($1, p, "/"); d = p[n - 1]; gsub("_", " ", d); total++; ok += (d == $8) }
    END { printf "%d/%d = %.1f%%\n", ok, total, 100 * ok / total }'
}

run() {  # NAME, then train options
  local name=$1; shift
  local start=$SECONDS
  soundnet train my_sounds --init "$init" --run-dir "runs/$name" --overwrite "$@" 2> "runs-$name.log"
  echo "== $name: trained in $((SECONDS - start)) s: soundnet train my_sounds --init $init $*"
  grep -E "^(validation|head|training|stopped|best)" "runs-$name.log" || true
  echo "new clips, last epoch: $(soundnet tag new_clips -r --weights "runs/$name/model.safetensors" \
        --top-k 1 --min-conf 0 --csv 2> /dev/null | accuracy)"
  if [ -f "runs/$name/best.safetensors" ]; then
    echo "new clips, best epoch: $(soundnet tag new_clips -r --weights "runs/$name/best.safetensors" \
          --top-k 1 --min-conf 0 --csv 2> /dev/null | accuracy)"
  fi
}

mkdir -p runs
run frozen --freeze-trunk --lr 0.01 --epochs 60 --batch-size 8
run frozen-all --freeze-trunk --lr 0.01 --epochs 60 --batch-size 8 --val-fraction 0
run conv7 --train-layers conv7 --lr 0.003 --epochs 40 --batch-size 8
run all --lr 0.0003 --epochs 40 --batch-size 8

# fit-svm with the same network, on the same clips
svm() {  # TITLE, then fit-svm arguments; prints the held-out fold's accuracy line
  echo "== fit-svm, $1: soundnet fit-svm ${*:2}"
  soundnet fit-svm "${@:2}" --weights "$init" --cache-dir cache 2>&1 | grep -E "^fold 2: accuracy"
}
svm "the validation split of runs/frozen (30 train / 10 test clips)" \
  my_sounds --labels runs/frozen/split.csv --test-fold 2
listing() {  # CSV of the given training clips (fold 1) and the new clips (fold 2)
  echo "path,label,fold"
  cat
  find new_clips -name '*.ogg' -o -name '*.wav' | sort |
    while read -r p; do echo "$p,$(basename "$(dirname "$p")" | tr _ " "),2"; done
}
awk -F, 'NR > 1 && $3 == 1 {print "my_sounds/" $1 "," $2 ",1"}' runs/frozen/split.csv |
  listing > train30-new.csv
awk -F, 'NR > 1 {print "my_sounds/" $1 "," $2 ",1"}' runs/frozen/split.csv | listing > all40-new.csv
svm "the 30 training clips of runs/frozen, the 120 new clips" --labels train30-new.csv --test-fold 2
svm "all 40 clips of my_sounds, the 120 new clips" --labels all40-new.csv --test-fold 2

# The frozen run and its SVM with two more seeds (another validation split each)
for seed in 1 2; do
  run "frozen-s$seed" --freeze-trunk --lr 0.01 --epochs 60 --batch-size 8 --seed "$seed"
  svm "the validation split of runs/frozen-s$seed" \
    my_sounds --labels "runs/frozen-s$seed/split.csv" --test-fold 2
  awk -F, 'NR > 1 && $3 == 1 {print "my_sounds/" $1 "," $2 ",1"}' "runs/frozen-s$seed/split.csv" |
    listing > "train30-new-s$seed.csv"
  svm "the 30 training clips of runs/frozen-s$seed, the 120 new clips" \
    --labels "train30-new-s$seed.csv" --test-fold 2
done
