#!/usr/bin/env bash
# cifar10-fast on a small fake data set with narrow widths: the pipeline runs, the loss falls, every
# output is written, and a run killed with SIGKILL mid-epoch resumes to bit-identical weights; then
# cifar10-fast-chart draws those runs (and a PyTorch one) against their wall time.
#   fast_cli_test.sh PATH/TO/cifar10-fast PATH/TO/make_fake_cifar10.py SCRATCH_FOLDER PATH/TO/cifar10-fast-chart
set -u
fast="$1"; make_data="$2"; work="$3"; chart="$4"
rm -rf "$work"; mkdir -p "$work"
python3 "$make_data" "$work/data" 200 || { echo "cannot make the fake data"; exit 1; }
passed=0; failed=0
check() { if eval "$2"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $1"; fi; }
small=(--data "$work/data" --width1 8 --width2 16 --width3 16 --epochs 3 --batch 100 --threads 2 --quiet --seed 1)

"$fast" "${small[@]}" --out "$work/a" --export-onnx "$work/a/model.onnx" > "$work/a.txt" 2>&1
check "a run finishes" '[ $? = 0 ]'
check "writes the ONNX file" "[ -s '$work/a/model.onnx' ]"
if /usr/bin/python3 -c "import onnx" 2>/dev/null; then
  check "the ONNX file passes the checker and carries the normalisation" "/usr/bin/python3 -c \"import onnx, json; m = onnx.load('$work/a/model.onnx'); onnx.checker.check_model(m, full_check=True); meta = {p.key: p.value for p in m.metadata_props}; assert json.loads(meta['normalization'])['mean'][0] > 0.49; assert len(json.loads(meta['classes'])) == 10\""
fi
for f in results.json model.safetensors accuracy.png loss.png class_accuracy.png confusion.png accuracy.svg loss.svg class_accuracy.svg confusion.svg; do
  check "writes $f" "[ -s '$work/a/$f' ]"
done
check "the loss falls" "python3 -c \"import json,sys; l=json.load(open('$work/a/results.json'))['epoch_train_loss']; sys.exit(0 if len(l)==3 and l[-1] < l[0] else 1)\""
check "results.json has both accuracies" "grep -q test_accuracy_without_tta '$work/a/results.json'"
# The PyTorch reference of the recipe reads the weights and finds the same accuracies, TTA included.
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  /usr/bin/python3 "$(dirname "$0")/../scripts/pytorch_fast.py" --data "$work/data" --load "$work/a/model.safetensors" \
    --width1 8 --width2 16 --width3 16 --threads 2 > "$work/pytorch_load.txt" 2>&1
  check "scripts/pytorch_fast.py --load gives headnet's accuracies" "/usr/bin/python3 -c \"import json; h = json.load(open('$work/a/results.json')); p = json.loads(open('$work/pytorch_load.txt').read().splitlines()[-1]); assert (h['test_accuracy'], h['test_accuracy_without_tta']) == (p['test_accuracy'], p['test_accuracy_without_tta']), (h['test_accuracy'], p)\""
  # The first 8 steps (4 epochs: the whitening bias freezes after 3; lookahead at step 5) replayed in
  # PyTorch from the same state on the same batches: the same training up to float rounding.
  "$fast" --data "$work/data" --width1 8 --width2 16 --width3 16 --epochs 5 --batch 100 --threads 2 --quiet --seed 3 \
    --out "$work/l" --debug-lockstep 8 > "$work/l.txt" 2>&1
  check "--debug-lockstep writes lockstep.safetensors" "[ \$? = 0 ] && [ -s '$work/l/lockstep.safetensors' ]"
  /usr/bin/python3 "$(dirname "$0")/../scripts/lockstep_fast.py" "$work/l/lockstep.safetensors" --threads 2 > "$work/lockstep.txt" 2>&1
  check "PyTorch replaying the first 8 steps trains the same (scripts/lockstep_fast.py)" "[ \$? = 0 ] || { cat '$work/lockstep.txt'; false; }"
else
  echo "SKIPPED: PyTorch loading cifar10-fast's weights and replaying its steps (no python3-torch)"
fi

sh -c '"$@"; exit $?' sh "$fast" "${small[@]}" --out "$work/b" --checkpoint-every 3 --debug-kill-at-step 14 >/dev/null 2>&1
check "the killed run exits 137 with a checkpoint" "[ \$? = 137 ] && [ -f '$work/b/checkpoint.safetensors' ]"
"$fast" --data "$work/data" --resume "$work/b" --quiet > "$work/b.txt" 2>&1
check "resume reports its place" "grep -q 'Resuming at epoch 2, step 2' '$work/b.txt'"
check "the resumed run ends with the same weights" "cmp -s '$work/a/model.safetensors' '$work/b/model.safetensors'"
"$fast" "${small[@]}" --out "$work/c" --epochs 0 > "$work/c.txt" 2>&1
check "refuses 0 epochs" "[ \$? = 105 ]"

# The accuracy-against-minutes chart: headnet's two runs and a PyTorch one (scripts/pytorch_fast.py
# writes the same keys, and torch_version).
mkdir -p "$work/p"
python3 -c "import json; r = json.load(open('$work/a/results.json')); r['torch_version'] = '1.13.0'; r['train_seconds'] *= 3; json.dump(r, open('$work/p/results.json', 'w'))"
"$chart" "$work/a" "$work/b/results.json" "$work/p" --out "$work/chart.png" > "$work/chart.txt" 2>&1
check "the chart is drawn" "[ \$? = 0 ] && [ -s '$work/chart.png' ] && [ -s '$work/chart.svg' ]"
check "its table lists two headnet runs and one PyTorch run" "[ \$(grep -c '^| headnet |' '$work/chart.txt') = 2 ] && [ \$(grep -c '^| PyTorch 1.13.0 |' '$work/chart.txt') = 1 ]"
check "the chart names its series" "grep -q '>headnet<' '$work/chart.svg' && grep -q '>PyTorch 1.13.0<' '$work/chart.svg'"
"$chart" "$work/a" "$work/missing" --out "$work/chart2.png" > "$work/chart2.txt" 2>&1
check "a missing run is an error naming it" "[ \$? = 1 ] && grep -q 'missing/results.json: cannot open' '$work/chart2.txt' && [ ! -e '$work/chart2.png' ]"
echo '{"recipe": {"epochs": 2}}' > "$work/p/bad.json"
"$chart" "$work/p/bad.json" --out "$work/chart3.png" > "$work/chart3.txt" 2>&1
check "a results.json without the fast recipe's keys is an error naming it" "[ \$? = 1 ] && grep -q 'bad.json: not a results.json of the fast recipe' '$work/chart3.txt'"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
