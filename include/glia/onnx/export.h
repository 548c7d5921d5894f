// ONNX export: a built model's inference graph as an ONNX ModelProto (opset 17 by default), with a
// symbolic batch dimension, for ONNX Runtime and other ONNX consumers. Export follows the op
// definitions: each op the model's forward pass records has an exporter (src/glia/onnx/ops.cpp);
// an op without one is a ValueError naming it and the layer that made it. See docs/onnx.md.
#pragma once

#include <cstdint>
#include <string>

namespace glia {
class Model;
}

namespace glia::onnx {

struct ExportOptions {
  /// The ai.onnx opset the model declares (and whose operators the exporters emit); 17 or newer.
  int64_t opset = 17;
  /// The inputs' and outputs' first dimension is the symbolic "batch" instead of a fixed size.
  bool dynamic_batch = true;
  /// ModelProto.producer_name.
  std::string producer = "glia";
};

/// Writes the model (built: a Functional model, a Sequential model with a known input shape, or a
/// model called once) to `path` as ONNX, atomically. ValueError for a model that is not built or
/// uses an op ONNX cannot express; IOError(path) when the file cannot be written.
void export_model(Model& model, const std::string& path, const ExportOptions& o = {});

/// The serialized ModelProto that export_model writes.
std::string export_model_bytes(Model& model, const ExportOptions& o = {});

}  // namespace glia::onnx
