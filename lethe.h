// Lethe: train models beyond the memory of their device, under a budget in bytes.
#pragma once

#include "autograd/gradcheck.h"
#include "dist/dist.h"
#include "framework/device.h"
#include "framework/dtype.h"
#include "framework/error.h"
#include "framework/max_batch.h"
#include "framework/session.h"
#include "framework/shape.h"
#include "framework/tensor.h"
#include "ops/ops.h"
#include "data/data.h"
#include "nn/nn.h"
#include "optim/optim.h"
#include "serialize/serialize.h"
