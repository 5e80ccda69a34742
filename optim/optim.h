// Every optimizer and schedule of lethe::optim.
#pragma once

#include "optim/adamw.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"
#include "optim/sgd.h"
