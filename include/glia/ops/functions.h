// All tensor functions.
#pragma once

#include "glia/ops/conv.h"
#include "glia/ops/elementwise.h"
#include "glia/ops/image.h"
#include "glia/ops/index.h"
#include "glia/ops/linalg.h"
#include "glia/ops/loss.h"
#include "glia/ops/norm.h"
#include "glia/ops/reduce.h"
#include "glia/ops/shape_ops.h"
