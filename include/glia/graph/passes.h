// Graph optimization passes. Each is a separate unit that returns how many nodes it changed;
// optimize() runs them in a sensible order until nothing changes. Nodes with side effects
// (in-place updates) are never removed, merged, folded or moved.
#pragma once

#include "glia/graph/graph.h"

namespace glia::graph {

struct PassOptions {
  bool dead_code = true;
  bool constant_folding = true;
  bool cse = true;
  bool simplify = true;
  bool fusion = true;
  bool schedule_updates = true;
};

struct PassStats {
  int dead = 0;        // nodes removed as unused
  int folded = 0;      // nodes computed at compile time
  int merged = 0;      // duplicate nodes merged
  int simplified = 0;  // algebraic identities removed
  int fused = 0;       // nodes absorbed into fused kernels (or rewritten to touch less memory)
  int scheduled = 0;   // updates moved up to where their inputs are ready
};

/// Removes nodes that neither lead to the graph's outputs nor have side effects.
int eliminate_dead_code(Graph& g);
/// Computes nodes whose inputs are all constants (and that are deterministic) once, now.
int fold_constants(Graph& g);
/// Merges nodes that apply the same op with the same attributes to the same inputs.
int eliminate_common_subexpressions(Graph& g);
/// x * 1, x + 0, x - 0, x / 1, a transpose of a transpose, a reshape of a reshape, ...
int simplify_algebra(Graph& g);
/// Fuses chains of element-wise ops into one kernel, and element-wise ops after a matmul or
/// convolution (bias, activation) into that op.
int fuse_elementwise(Graph& g);

/// Moves each update of variables (optimizer steps) up to just after its inputs are ready and the
/// last read of what it writes: gradients die sooner (a smaller arena) and are still in cache when
/// the update reads them.
int schedule_updates(Graph& g);

/// All of the above, repeated until nothing changes.
PassStats optimize(Graph& g, const PassOptions& o = {});

}  // namespace glia::graph
