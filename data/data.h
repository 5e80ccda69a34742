// Every dataset and loader of lethe::data.
#pragma once

#include "data/dataloader.h"
#include "data/dataset.h"
#include "data/transforms.h"
#include "data/idx.h"
#include "data/sampler.h"
