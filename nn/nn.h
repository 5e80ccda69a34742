// Every module of lethe::nn.
#pragma once

#include "nn/activation.h"
#include "nn/attention.h"
#include "nn/containers.h"
#include "nn/conv.h"
#include "nn/embedding.h"
#include "nn/init.h"
#include "nn/linear.h"
#include "nn/module.h"
#include "nn/norm.h"
#include "nn/rnn.h"
#include "nn/sequential.h"
#include "nn/transformer.h"
#include "nn/upsample.h"
