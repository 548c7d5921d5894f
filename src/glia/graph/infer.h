// Shape inference for graph nodes (internal to the graph layer).
#pragma once

#include <span>
#include <vector>

#include "glia/graph/graph.h"

namespace glia::graph {

/// Output specs of op for these inputs; dims that depend on unknown (-1) input dims come out -1.
std::vector<TensorSpec> infer_op(const OpDef& op, std::span<const Tensor> in, const Attrs& attrs);
/// Output specs of an op node for concrete input shapes (used when planning).
std::vector<TensorSpec> infer_node(const Node& n, const std::vector<Shape>& input_shapes);
/// Number of elements, or -1 if a dim is unknown.
int64_t known_numel(const Shape& s);

}  // namespace glia::graph
