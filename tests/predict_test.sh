#!/usr/bin/env bash
# headnet-predict on PNG files of CIFAR-10 test images gives exactly the logits the model gives
# those images through the data loader, from the safetensors file and from the ONNX file; its
# errors name the file and exit 1.
#   predict_test.sh CIFAR10_FAST HEADNET_PREDICT PREDICT_FIXTURE MAKE_FAKE_DATA SCRATCH
set -u
fast="$1"; predict="$2"; fixture="$3"; make_data="$4"; work="$5"
rm -rf "$work"; mkdir -p "$work/png"
python3 "$make_data" "$work/data" 60 || { echo "cannot make the fake data"; exit 1; }
passed=0; failed=0
check() { if eval "$2"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $1"; fi; }

"$fast" --data "$work/data" --out "$work/run" --width1 8 --width2 16 --width3 16 --epochs 1 --batch 50 --threads 2 \
  --quiet --tta 0 --export-onnx "$work/run/model.onnx" > "$work/run.txt" 2>&1
check "a model is trained" '[ $? = 0 ] && [ -s "$work/run/model.safetensors" ] && [ -s "$work/run/model.onnx" ]'
"$fixture" "$work/data" "$work/run/model.safetensors" "$work/png" 8
check "the fixture writes the PNGs and the expected logits" '[ $? = 0 ]'

same_logits() {  # $1: headnet-predict's JSON
  python3 - "$work/png/expected.json" "$1" <<'PY'
import json, sys
expected = json.load(open(sys.argv[1]))
got = json.load(open(sys.argv[2]))
assert [e["image"] for e in expected] == [g["image"] for g in got]
for e, g in zip(expected, got):
    assert e["logits"] == g["logits"], (e["image"], e["logits"], g["logits"])
    assert g["top"][0]["index"] == max(range(10), key=lambda c: e["logits"][c])
PY
}
pngs=$(python3 -c "import json; print(' '.join(e['image'] for e in json.load(open('$work/png/expected.json'))))")
"$predict" --model "$work/run/model.safetensors" --json $pngs > "$work/predict_st.json" 2> "$work/predict_st.err"
check "headnet-predict (safetensors) gives the loader's logits exactly" 'same_logits "$work/predict_st.json"'
"$predict" --model "$work/run/model.onnx" --json $pngs > "$work/predict_onnx.json" 2> "$work/predict_onnx.err"
check "headnet-predict (ONNX) gives the loader's logits exactly" 'same_logits "$work/predict_onnx.json"'
"$predict" --model "$work/run/model.safetensors" --top 3 "$work/png/test_0.png" > "$work/text.txt"
check "text output: the top 3 with probabilities" "grep -Eq '^.*test_0.png: [a-z]+ [01]\.[0-9]{3}, [a-z]+ [01]\.[0-9]{3}, [a-z]+ [01]\.[0-9]{3}$' '$work/text.txt'"

printf 'not an image' > "$work/bad.png"
"$predict" --model "$work/run/model.safetensors" "$work/bad.png" > /dev/null 2> "$work/bad.err"
check "an unreadable image exits 1, naming it" "[ \$? = 1 ] && grep -q 'bad.png: not an image headnet can read' '$work/bad.err'"
head -c 100 "$work/png/test_1.png" > "$work/truncated.png"
"$predict" --model "$work/run/model.safetensors" "$work/truncated.png" > /dev/null 2> "$work/truncated.err"
check "a truncated PNG exits 1, naming it" "[ \$? = 1 ] && grep -q 'truncated.png: ' '$work/truncated.err'"
"$predict" --model "$work/run/checkpoint.safetensors" "$work/png/test_0.png" > /dev/null 2> "$work/arch.err"
check "a training checkpoint is refused, with what to give instead" "[ \$? = 1 ] && grep -q 'is a training checkpoint' '$work/arch.err'"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
