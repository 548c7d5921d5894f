// The per-op ONNX exporters' view of one graph node (internal to src/glia/onnx). Exporters are
// registered by op name with GLIA_ONNX_OP, next to each other in ops.cpp, and see no protobuf:
// they read the glia node (inputs, attrs, shapes) and emit ONNX nodes and initializers.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "glia/ops/op.h"

namespace glia::onnx {

/// An ONNX node attribute: INT, FLOAT, STRING, INTS, FLOATS.
using OnnxAttrValue = std::variant<int64_t, double, std::string, std::vector<int64_t>, std::vector<double>>;
using OnnxAttrs = std::vector<std::pair<std::string, OnnxAttrValue>>;

class OnnxContext {
 public:
  struct Impl;  // the exporter's state (export.cpp)
  explicit OnnxContext(Impl& impl) : impl_(impl) {}

  // --- the glia node being exported
  const std::string& op_name() const;
  /// The layer that recorded the node ("" if unknown).
  const std::string& layer() const;
  const Attrs& attrs() const;
  template <class T>
  const T& attr(const char* key) const {
    return attrs().get<T>(key);
  }
  size_t num_inputs() const;
  size_t num_outputs() const;
  /// ONNX value names of the node's inputs and outputs ("" for an output nothing reads).
  const std::string& input(size_t i) const;
  const std::string& output(size_t i = 0) const;
  /// Shapes have -1 where a dim is known only at run time (the batch).
  const Shape& input_shape(size_t i) const;
  DType input_dtype(size_t i) const;
  const Shape& output_shape(size_t i = 0) const;
  DType output_dtype(size_t i = 0) const;
  /// Input i's value when it is known at export time (a weight or a constant), else undefined.
  Tensor constant_input(size_t i) const;
  /// The name of input i in `dtype`: itself, a converted initializer for constants, else a Cast.
  std::string input_as(size_t i, DType dtype);

  // --- emitting
  void add_node(const std::string& op_type, const std::vector<std::string>& inputs,
                const std::vector<std::string>& outputs, const OnnxAttrs& attributes = {});
  /// A new initializer holding t (copied); returns its name.
  std::string add_initializer(const Tensor& t, const std::string& hint = "const");
  /// A 1-D int64 initializer (shapes, axes, pads of operators that take them as inputs).
  std::string ints(const std::vector<int64_t>& v);
  /// A 0-d initializer of `dtype` holding v.
  std::string scalar(double v, DType dtype);
  /// A value name not used yet.
  std::string fresh_name(const std::string& hint = "t");
  /// Throws the ValueError for what this node does that ONNX export cannot express.
  [[noreturn]] void unsupported(const std::string& why) const;

 private:
  Impl& impl_;
};

/// ONNX's TensorProto.DataType number for a dtype (the "to" of Cast).
int64_t onnx_type(DType t);

using ExportFn = std::function<void(OnnxContext&)>;
/// Registers the exporter of glia op `op` (one per op).
void register_exporter(const std::string& op, ExportFn f);
/// The exporter of `op`, or null.
const ExportFn* find_exporter(const std::string& op);

}  // namespace glia::onnx

/// Registers the ONNX exporter of glia op `name`: GLIA_ONNX_OP(relu, [](OnnxContext& c) {...}).
#define GLIA_ONNX_OP(name, ...)                                                   \
  [[maybe_unused]] static const bool GLIA_CAT(glia_onnx_op_##name##_, __LINE__) = \
      (::glia::onnx::register_exporter(#name, __VA_ARGS__), true)
