#!/usr/bin/env bash
# The accelerator checks, for a machine with one or more CUDA GPUs; under 5 minutes on one H100.
#   bash benchmarks/gpu.sh /path/to/cifar10-jpeg/train /path/to/photos/train/small
# Each line of output is measured in this run; compare ratios, and name the card for absolute figures.
set -euo pipefail
cifar="${1:?CIFAR-10 JPEG train folder}"
photos="${2:?a folder of photos (Tiny ImageNet train/small) for streaming at 128 px}"
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
bench=(python benchmarks/throughput.py --data "$cifar" --images 20000 --repeats 3 --skip-startup)
echo "== fp32: loop against the compute bound and the seed-style pipeline (target: loop >= 10x seed-style)"
"${bench[@]}" --precision 32
echo "== bf16 autocast"
"${bench[@]}" --precision bf16
echo "== bf16, channels_last"
"${bench[@]}" --precision bf16 --channels-last
echo "== bf16, torch.compile"
"${bench[@]}" --precision bf16 --compile
echo "== streaming against in memory at 32 and 128 px"
python benchmarks/throughput.py --skip-loop --streaming "$photos" --streaming-images 20000
gpus=$(nvidia-smi --list-gpus | wc -l)
if [ "$gpus" -ge 2 ]; then
    echo "== torchrun on 2 GPUs: one run, DDP (the same global batch of 100)"
    root=$(mktemp -d)
    python -m torch.distributed.run --standalone --nproc_per_node=2 -m colorize.train "paths.root_dir=$root" \
        data=folder "data.root=$cifar" model=unet trainer.epochs=2 trainer.progress=false | grep "epoch "
fi
