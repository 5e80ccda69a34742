#!/usr/bin/env python3
"""Export the joint forward+backward training graph of a PyTorch model to remat-graph/1.

    /usr/bin/python3 scripts/export_torch_graph.py resnet18 --batch 32 --size 64 -o resnet18.graph.json

The graph is traced with AOTAutograd (functorch), which gives the joint graph of one training step:
the parameters, buffers, the batch, the labels and the gradient seed (a "tangent") as placeholders,
then the forward ops, then the backward ops. Every op that makes new storage is one node, as the
format requires: an op with several results (native_batch_norm, convolution_backward...) is one
node whose bytes is the sum of its results' new storage, and readers of any of its results read
that node, so the node lives until the last reader of any result (a convolution's input gradient is
held as long as its weight gradient, an output, is). The placeholders are resident; the outputs are
the loss and the parameter gradients. Views (an op whose outputs share storage with an input or
with another op's result: view, t, expand, detach, getitem of a multi-result op...) make no node:
readers of a view read the node whose storage it is. The joint graph is functional (AOTAutograd
functionalizes it), so there is no in-place op to collapse. Costs are CPU seconds of one thread,
the minimum over --runs runs of the whole graph, each op timed on its own.

Needs Debian's python3-torch and python3-torchvision (torch 1.13: functorch.compile.aot_function).
"""
import argparse
import gzip
import json
import sys
import time

import torch
import torch.fx
import torch.nn as nn
from functorch.compile import aot_function, default_partition
from torch.nn.utils import stateless


def make_model(name, size, classes):
    """(model, input shape without batch, label kind). Models not in torchvision are small ones
    defined here: a BERT-style encoder and a U-Net."""
    import torchvision.models as tvm

    if name == "bert":
        layer = nn.TransformerEncoderLayer(d_model=256, nhead=4, dim_feedforward=1024, batch_first=True,
                                           dropout=0.0, activation="gelu")

        class Bert(nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = nn.Embedding(8192, 256)
                self.pos = nn.Parameter(torch.zeros(1, size, 256))
                self.enc = nn.TransformerEncoder(layer, num_layers=4, enable_nested_tensor=False)
                self.head = nn.Linear(256, 8192)

            def forward(self, tokens):
                return self.head(self.enc(self.emb(tokens) + self.pos))

        return Bert(), "tokens"
    if name == "unet":
        def block(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(),
                                 nn.Conv2d(o, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU())

        class UNet(nn.Module):
            def __init__(self, w=16, depth=3):
                super().__init__()
                self.down = nn.ModuleList()
                self.up = nn.ModuleList()
                self.upconv = nn.ModuleList()
                c = 3
                for d in range(depth):
                    self.down.append(block(c, w << d))
                    c = w << d
                self.mid = block(c, c * 2)
                c *= 2
                for d in reversed(range(depth)):
                    self.upconv.append(nn.ConvTranspose2d(c, w << d, 2, stride=2))
                    self.up.append(block(2 * (w << d), w << d))
                    c = w << d
                self.out = nn.Conv2d(c, classes, 1)

            def forward(self, x):
                skips = []
                for b in self.down:
                    x = b(x)
                    skips.append(x)
                    x = nn.functional.max_pool2d(x, 2)
                x = self.mid(x)
                for uc, b in zip(self.upconv, self.up):
                    x = b(torch.cat([uc(x), skips.pop()], 1))
                return self.out(x)

        return UNet(), "pixels"
    if name == "vit":
        from torchvision.models.vision_transformer import VisionTransformer

        # ViT-B/16's shape scaled down: 6 layers, width 256, patches of 8 pixels.
        return VisionTransformer(image_size=size, patch_size=8, num_layers=6, num_heads=4, hidden_dim=256,
                                 mlp_dim=1024, num_classes=classes), "classes"
    ctor = getattr(tvm, name)
    kw = {"num_classes": classes}
    if name == "inception_v3":
        kw.update(aux_logits=False, init_weights=False)
    if name == "googlenet":
        kw.update(aux_logits=False, init_weights=False)
    if name.startswith("vit"):
        kw.update(image_size=size)
    return ctor(**kw), "classes"


def capture_joint(model, example, labels, kind):
    params = {k: v for k, v in model.named_parameters()}
    buffers = {k: v for k, v in model.named_buffers()}

    def step(p, b, x, y):
        out = stateless.functional_call(model, {**p, **b}, (x,))
        if kind == "tokens":
            return nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
        return nn.functional.cross_entropy(out, y)

    cap = {}

    def partition(joint, inputs, **kw):
        cap["joint"], cap["inputs"] = joint, inputs
        return default_partition(joint, inputs, **kw)

    def ident(gm, _inputs):
        return gm

    f = aot_function(step, fw_compiler=ident, bw_compiler=ident, partition_fn=partition)
    f(params, buffers, example, labels)
    return cap["joint"], cap["inputs"], len(params)


def tensors_of(value):
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in tensors_of(v)]
    return []


def storage_key(t):
    return t.storage().data_ptr()


def export(joint, inputs, n_params, runs, name):
    """Runs the joint graph `runs` times, timing each op; returns the remat-graph/1 dict."""
    graph = joint.graph
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if len(inputs) != len(placeholders):  # (primals, tangents)
        inputs = [t for part in inputs for t in part]
    assert len(inputs) == len(placeholders), (len(inputs), len(placeholders))
    node_of = {}      # fx node -> our id (views: the id of their base)
    nodes = []
    best = {}         # fx node -> min seconds
    owner = {}        # storage data_ptr -> our id, refreshed every run

    def add(fx, op, nbytes, ins, resident=False):
        nodes.append({"id": len(nodes), "name": fx.name, "op": op, "bytes": int(nbytes), "cost": 0.0,
                      "inputs": sorted(set(ins)), **({"resident": True} if resident else {})})
        return len(nodes) - 1

    for r in range(runs):
        env = {}
        owner.clear()
        for ph, value in zip(placeholders, inputs):
            env[ph] = value
            if r == 0:
                node_of[ph] = add(ph, "tangent" if ph.name.startswith("tangents") else "input",
                                  sum(t.numel() * t.element_size() for t in tensors_of(value)), [], True)
            for t in tensors_of(value):
                owner.setdefault(storage_key(t), node_of[ph])
        for fx in graph.nodes:
            if fx.op != "call_function":
                continue
            args = torch.fx.node.map_arg(fx.args, lambda a: env[a])
            kwargs = torch.fx.node.map_arg(fx.kwargs, lambda a: env[a])
            t0 = time.perf_counter()
            out = fx.target(*args, **kwargs)
            dt = time.perf_counter() - t0
            env[fx] = out
            best[fx] = min(best.get(fx, dt), dt)
            if r > 0:
                continue
            ins = [node_of[a] for a in fx.all_input_nodes if a in node_of]
            outs = tensors_of(out)
            fresh = [t for t in outs if storage_key(t) not in owner]
            if outs and not fresh:
                # A view (or a getitem of a multi-output op): no node; readers read its base.
                node_of[fx] = owner[storage_key(outs[0])]
                continue
            if not outs:
                continue  # a shape, a scalar
            target = getattr(fx.target, "__name__", str(fx.target))
            op = target.split(".")[0]
            # One node for the op, whatever the number of its results (the format: a multi-output
            # op is one node whose bytes is the sum); results sharing a storage count it once.
            nbytes, keys = 0, []
            for t in fresh:
                key = storage_key(t)
                if key in keys:
                    continue
                keys.append(key)
                st = t.storage()
                nbytes += st.nbytes() if hasattr(st, "nbytes") else st.size() * t.element_size()
            node_of[fx] = add(fx, op, nbytes, ins)
            for key in keys:
                owner[key] = node_of[fx]
        if r == 0:
            outputs = []
            out_node = next(n for n in graph.nodes if n.op == "output")
            flat = torch.fx.node.map_arg(out_node.args[0], lambda a: a)
            # [forward outputs..., gradients of the inputs...]: the loss, then the parameters' gradients.
            loss = flat[0]
            primals = sum(1 for ph in placeholders if not ph.name.startswith("tangents"))
            grads = flat[len(flat) - primals:][:n_params]
            for o in [loss] + list(grads):
                if isinstance(o, torch.fx.Node) and o in node_of and not nodes[node_of[o]].get("resident"):
                    if node_of[o] not in outputs:
                        outputs.append(node_of[o])
    # Costs: the cheapest run of each op; views cost nothing (they make no node). An op whose
    # output is a view of another op's new storage (rare) adds its time to that node.
    for fx, dt in best.items():
        if fx in node_of and nodes[node_of[fx]]["name"] == fx.name:
            nodes[node_of[fx]]["cost"] = dt
    return {"format": "remat-graph/1", "name": name, "nodes": nodes, "outputs": outputs}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="torchvision model name (resnet18, vgg11, ...) or vit (small ViT), bert, unet")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=64, help="image side in pixels, or sequence length (bert)")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3, help="timed runs; each op's cost is its minimum")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", help="graph name (default: model-bBATCH-SIZEpx)")
    ap.add_argument("-o", "--output", required=True, help="output file; .gz compresses")
    a = ap.parse_args()
    if a.batch < 1 or a.size < 1 or a.runs < 1:
        sys.exit("export_torch_graph: --batch, --size and --runs must be positive")
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    try:
        model, kind = make_model(a.model, a.size, a.classes)
    except AttributeError:
        sys.exit(f"export_torch_graph: unknown model '{a.model}' (a torchvision.models name, bert or unet)")
    model.train()
    if kind == "tokens":
        x = torch.randint(0, 8192, (a.batch, a.size))
        y = torch.randint(0, 8192, (a.batch, a.size))
    else:
        x = torch.randn(a.batch, 3, a.size, a.size)
        y = torch.randint(0, a.classes, (a.batch, a.size, a.size) if kind == "pixels" else (a.batch,))
    joint, inputs, n_params = capture_joint(model, x, y, kind)
    name = a.name or f"{a.model}-b{a.batch}-{a.size}px"
    g = export(joint, inputs, n_params, a.runs, name)
    text = json.dumps(g, separators=(",", ":"))
    if a.output.endswith(".gz"):
        with gzip.open(a.output, "wt") as f:
            f.write(text)
    else:
        with open(a.output, "w") as f:
            f.write(text)
    print(f"{name}: {len(g['nodes'])} nodes, {len(g['outputs'])} outputs -> {a.output}")


if __name__ == "__main__":
    main()
