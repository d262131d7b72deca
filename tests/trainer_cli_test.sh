#!/usr/bin/env bash
# The trainer from the command line: every error a user can meet (message and exit code),
# determinism, and exact resume after SIGKILL.
#   trainer_cli_test.sh PATH/TO/cifar10-train PATH/TO/make_fake_cifar10.py SCRATCH_FOLDER
set -u
train="$1"; make_data="$2"; work="$3"
rm -rf "$work"; mkdir -p "$work"
python3 "$make_data" "$work/data" 200 || { echo "cannot make the fake data"; exit 1; }
passed=0; failed=0

# expect NAME EXPECTED_EXIT_CODE EXPECTED_STDERR_SUBSTRING -- COMMAND...
expect() {
  local name="$1" code="$2" text="$3"; shift 4
  "$@" >"$work/out.txt" 2>"$work/err.txt"
  local got=$?
  if [ "$got" = "$code" ] && grep -qF -- "$text" "$work/err.txt" "$work/out.txt"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAILED: $name: exit $got (expected $code), output:"; cat "$work/err.txt" "$work/out.txt" | head -5
    echo "  expected to contain: $text"
  fi
}

quick=(--epochs 1 --batch 20 --quiet)
expect "unknown flag" 109 "The following argument was not expected: --frobnicate" -- "$train" --frobnicate
expect "bad number" 105 "--epochs: Value zero not in range 1 to 10000" -- "$train" --epochs zero
expect "zero epochs" 105 "--epochs: Value 0 not in range 1 to 10000" -- "$train" --epochs 0
expect "impossible width" 105 "--conv1: Value 0 not in range 1 to 4096" -- "$train" --conv1 0
expect "negative lr" 105 "--lr: Value -1 not in range" -- "$train" --lr -1
expect "missing data" 1 "no CIFAR-10 data in '$work/nowhere'" -- "$train" --data "$work/nowhere" --out "$work/o1"
mkdir -p "$work/truncated"; cp "$work/data/"*.bin "$work/truncated/"; head -c 5000 "$work/data/test_batch.bin" > "$work/truncated/test_batch.bin"
expect "truncated data" 1 "'$work/truncated/test_batch.bin' has 5000 bytes, not a whole number of 3073-byte records: record 1 is truncated" \
  -- "$train" --data "$work/truncated" --out "$work/o2"
touch "$work/a_file"
expect "unwritable output" 1 "cannot create the output folder '$work/a_file/out'" -- "$train" --data "$work/data" --out "$work/a_file/out"
expect "missing weights" 105 "--load: File does not exist" -- "$train" --data "$work/data" --load "$work/none.safetensors"
echo "not weights" > "$work/bad.safetensors"
expect "bad weights" 1 "header length 7451598620781211502 exceeds the 4 bytes after it" -- "$train" --data "$work/data" --out "$work/o3" --load "$work/bad.safetensors"
expect "resume without checkpoint" 1 "--resume $work/data: no checkpoint.safetensors there" -- "$train" --data "$work/data" --resume "$work/data"
expect "diverging run" 3 "training diverged at epoch 1, step" -- "$train" --data "$work/data" --out "$work/o4" "${quick[@]}" --lr 100
expect "diverging run names the layer" 3 "is the first to output a NaN or infinity; no checkpoint had been written yet" -- "$train" --data "$work/data" --out "$work/o4" "${quick[@]}" --lr 100
expect "diverging run keeps the checkpoint" 3 "the last good checkpoint is $work/o5/checkpoint.safetensors" -- "$train" --data "$work/data" --out "$work/o5" --epochs 3 --batch 20 --quiet --lr 1 --checkpoint-every 5

# Determinism: same seed and threads, bit-identical weights.
expect "run A" 0 "Accuracy of the network" -- "$train" --data "$work/data" --out "$work/a" --epochs 2 --batch 4 --seed 3 --threads 2 --quiet --checkpoint-every 50
# The tutorial's picture: two lines in its format (four classes, five characters each) and the PNG.
if grep -Eq '^GroundTruth:  [a-z ]{5} [a-z ]{5} [a-z ]{5} [a-z ]{5}$' "$work/out.txt" && grep -Eq '^Predicted:  [a-z ]{5} [a-z ]{5} [a-z ]{5} [a-z ]{5}$' "$work/out.txt" &&
   [ -s "$work/a/test_images.png" ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: the tutorial's GroundTruth/Predicted lines and test_images.png"; fi
expect "run B" 0 "Accuracy of the network" -- "$train" --data "$work/data" --out "$work/b" --epochs 2 --batch 4 --seed 3 --threads 2 --quiet --checkpoint-every 50
if cmp -s "$work/a/model.safetensors" "$work/b/model.safetensors"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: same seed, different weights"; fi

# Exact resume: killed with SIGKILL mid-epoch (step 370 of 250 per epoch: epoch 2), then resumed.
# (run through sh so that this shell does not print "Killed")
sh -c '"$@"; exit $?' sh "$train" --data "$work/data" --out "$work/c" --epochs 2 --batch 4 --seed 3 --threads 2 --quiet \
  --checkpoint-every 50 --debug-kill-at-step 370 >/dev/null 2>&1
code=$?
if [ "$code" = 137 ] && [ -f "$work/c/checkpoint.safetensors" ] && [ ! -f "$work/c/model.safetensors" ]; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAILED: the killed run exited $code (expected 137, a checkpoint and no model)"
fi
expect "resume" 0 "Resuming $work/c/checkpoint.safetensors at epoch 2, step 100" -- "$train" --data "$work/data" --resume "$work/c" --quiet
if cmp -s "$work/a/model.safetensors" "$work/c/model.safetensors"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAILED: the resumed run's weights differ from the uninterrupted run's"
fi

# The same with AdamW, a cosine schedule and weight decay (optimiser buffers, schedule position).
modern=(--epochs 2 --batch 4 --seed 3 --threads 2 --quiet --optimizer adamw --lr 0.003 --weight-decay 0.05 --schedule cosine)
expect "adamw run" 0 "Accuracy of the network" -- "$train" --data "$work/data" --out "$work/d" "${modern[@]}"
sh -c '"$@"; exit $?' sh "$train" --data "$work/data" --out "$work/e" "${modern[@]}" --checkpoint-every 40 \
  --debug-kill-at-step 290 >/dev/null 2>&1
code=$?
if [ "$code" = 137 ] && [ -f "$work/e/checkpoint.safetensors" ]; then passed=$((passed + 1)); else
  failed=$((failed + 1)); echo "FAILED: the killed AdamW run exited $code (expected 137 and a checkpoint)"; fi
expect "adamw resume" 0 "Resuming $work/e/checkpoint.safetensors at epoch 2, step 30" -- "$train" --data "$work/data" --resume "$work/e" --quiet
if cmp -s "$work/d/model.safetensors" "$work/e/model.safetensors"; then passed=$((passed + 1)); else
  failed=$((failed + 1)); echo "FAILED: the resumed AdamW run's weights differ from the uninterrupted run's"; fi
if grep -q '"schedule": "cosine"' "$work/e/results.json"; then passed=$((passed + 1)); else
  failed=$((failed + 1)); echo "FAILED: results.json does not record the schedule"; fi
expect "unknown optimizer" 105 "--optimizer: rmsprop not in {sgd,adam,adamw}" -- "$train" --optimizer rmsprop
# A checkpoint that is cut short is refused with its name, and left as it was.
head -c 3000 "$work/e/checkpoint.safetensors" > "$work/e/cut"; cp "$work/e/cut" "$work/f.bak"
mkdir -p "$work/f"; cp "$work/e/cut" "$work/f/checkpoint.safetensors"
expect "truncated checkpoint" 1 "$work/f/checkpoint.safetensors" -- "$train" --data "$work/data" --resume "$work/f" --quiet
if cmp -s "$work/f/checkpoint.safetensors" "$work/f.bak"; then passed=$((passed + 1)); else
  failed=$((failed + 1)); echo "FAILED: the truncated checkpoint was changed"; fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
