#!/bin/sh
# Exports bench/graphs/torch/ (see its README): one training step of each model, CPU costs measured
# on one thread. Needs Debian's python3-torch and python3-torchvision; run from the repository root.
set -e
out=bench/graphs/torch
mkdir -p "$out"
x() { name=$1; shift; /usr/bin/python3 scripts/export_torch_graph.py "$@" --name "$name" -o "$out/$name.graph.json"; }
x resnet18-b32-64px      resnet18          --batch 32 --size 64
x vgg11-b64-64px         vgg11             --batch 64 --size 64
x squeezenet-b32-64px    squeezenet1_0     --batch 32 --size 64
x shufflenetv2-b32-64px  shufflenet_v2_x1_0 --batch 32 --size 64
x inception3-b8-96px     inception_v3      --batch 8  --size 96
x efficientnetb0-b16-64px efficientnet_b0  --batch 16 --size 64
x vit-b16-64px           vit               --batch 16 --size 64
x bert-b8-128            bert              --batch 8  --size 128
x unet-b8-64px           unet              --batch 8  --size 64
x densenet121-b8-64px    densenet121       --batch 8  --size 64
x googlenet-b8-64px      googlenet         --batch 8  --size 64
