// Glia: tensors, eager autograd and the ops, in one include.
#pragma once

#include "glia/autograd/autograd.h"
#include "glia/core/device.h"
#include "glia/core/dtype.h"
#include "glia/core/error.h"
#include "glia/core/random.h"
#include "glia/core/scalar.h"
#include "glia/core/shape.h"
#include "glia/core/storage.h"
#include "glia/core/tensor.h"
#include "glia/core/threads.h"
#include "glia/data/dataset.h"
#include "glia/data/datasets.h"
#include "glia/data/readers.h"
#include "glia/ops/functions.h"
#include "glia/version.h"
