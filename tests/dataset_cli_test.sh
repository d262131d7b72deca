#!/usr/bin/env bash
# cifar10-train on other data: an image folder (classes from folder names, a held-out split) and
# MNIST (one channel, 28x28), then headnet-predict on one of the folder's images; bad --dataset
# values give clear errors.
#   dataset_cli_test.sh CIFAR10_TRAIN HEADNET_PREDICT MAKE_FAKE_DATASETS SCRATCH CIFAR10_FAST
set -u
train="$1"; predict="$2"; make_data="$3"; work="$4"; fast="$5"
rm -rf "$work"; mkdir -p "$work"
python3 "$make_data" "$work" || { echo "cannot make the fake data sets"; exit 1; }
passed=0; failed=0
check() { if eval "$2"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $1"; fi; }

"$train" --dataset "imagefolder:$work/pets" --image-size 16 --epochs 3 --batch 4 --lr 0.01 --threads 2 --quiet \
  --out "$work/pets_run" > "$work/pets.txt" 2>&1
check "trains on an image folder" '[ $? = 0 ]'
check "the network takes 16x16 RGB images" "grep -q '(4, 3, 16, 16)' '$work/pets.txt' || grep -q 'conv1: Conv2d(3, 6' '$work/pets.txt'"
check "classes come from the folder names" "grep -q 'Accuracy for class: red' '$work/pets.txt' && ! grep -q 'plane' '$work/pets.txt'"
check "evaluates on the 20% held out (7 images)" "grep -q 'on the 7 test images' '$work/pets.txt'"
# The same run with the folder streamed from disk (a cache of 0 MB): the same model, byte for byte.
"$train" --dataset "imagefolder:$work/pets" --image-size 16 --epochs 3 --batch 4 --lr 0.01 --threads 2 --quiet \
  --image-cache-mb 0 --out "$work/pets_streamed" > "$work/pets_streamed.txt" 2>&1
check "trains on a streamed image folder" '[ $? = 0 ] && grep -q "images are streamed from disk" "$work/pets_streamed.txt"'
check "streamed and cached runs give the same model" "cmp -s '$work/pets_run/model.safetensors' '$work/pets_streamed/model.safetensors'"
"$predict" --model "$work/pets_run/model.safetensors" --top 1 "$work/pets/red/03.png" > "$work/predict.txt" 2>&1
check "headnet-predict names a folder class for a photo" "grep -Eq '03.png: (red|green|blue) [01]\.[0-9]{3}$' '$work/predict.txt'"

"$train" --dataset "mnist:$work/mnist" --epochs 1 --batch 4 --threads 2 --quiet --out "$work/mnist_run" > "$work/mnist.txt" 2>&1
check "trains on MNIST" '[ $? = 0 ]'
check "one channel, 28x28" "grep -q 'conv1: Conv2d(1, 6' '$work/mnist.txt' && grep -q 'fc1: Linear(256, 120)' '$work/mnist.txt'"
check "the 20 test images" "grep -q 'on the 20 test images' '$work/mnist.txt'"

"$train" --dataset "nosuch:$work" --out "$work/x" > "$work/bad1.txt" 2>&1
check "an unknown kind is refused" "[ \$? = 1 ] && grep -q \"unknown kind 'nosuch'\" '$work/bad1.txt'"
"$train" --dataset "imagefolder:$work/nowhere" --out "$work/x" > "$work/bad2.txt" 2>&1
check "a missing folder is named" "[ \$? = 1 ] && grep -q 'nowhere. does not exist' '$work/bad2.txt'"
"$train" --dataset "mnist:$work/pets" --out "$work/x" > "$work/bad3.txt" 2>&1
check "a folder without IDX files is named" "[ \$? = 1 ] && grep -q \"no 'train-images-idx3-ubyte'\" '$work/bad3.txt'"

# cifar10-fast on the same data: gray 28x28 (an 8-filter whitening layer) and the folder at 32x32.
small=(--width1 8 --width2 16 --width3 16 --epochs 1 --batch 20 --threads 2 --quiet --tta 1)
"$fast" "${small[@]}" --dataset "mnist:$work/mnist" --out "$work/fast_mnist" > "$work/fast_mnist.txt" 2>&1
check "cifar10-fast trains on MNIST" '[ $? = 0 ]'
check "with a 1-channel whitening layer" "grep -q 'whiten: Conv2d(1, 8, kernel_size=2' '$work/fast_mnist.txt'"
"$fast" "${small[@]}" --dataset "imagefolder:$work/pets" --out "$work/fast_pets" --export-onnx "$work/fast_pets/model.onnx" > "$work/fast_pets.txt" 2>&1
check "cifar10-fast trains on an image folder" '[ $? = 0 ] && grep -q "\"red\"" "$work/fast_pets/results.json"'
"$predict" --model "$work/fast_pets/model.onnx" --top 1 "$work/pets/blue/00.png" > "$work/fast_predict.txt" 2>&1
check "headnet-predict with its ONNX file names a folder class" "grep -Eq '00.png: (red|green|blue) [01]\.[0-9]{3}$' '$work/fast_predict.txt'"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
