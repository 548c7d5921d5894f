// glia export: converts a saved model (model.save / glia::load_model) to ONNX.
//
//   glia export model.glia model.onnx [--opset 17] [--fixed-batch]
#include <glia/glia.h>
#include <glia/onnx/export.h>

#include <iostream>

#include "commands.h"

namespace glia::cli {
namespace {

struct ExportArgs {
  std::string input;
  std::string output;
  int64_t opset = 17;
  bool fixed_batch = false;
};

void run(const ExportArgs& a) {
  ModelPtr model = load_model(a.input);
  onnx::export_model(*model, a.output, {.opset = a.opset, .dynamic_batch = !a.fixed_batch});
  std::cerr << "exported " << model->name() << " (" << model->count_params() << " parameters) to " << a.output
            << " (ONNX opset " << a.opset << (a.fixed_batch ? ", batch 1" : ", any batch") << ")\n";
}

}  // namespace

void add_export(CLI::App& app) {
  auto a = std::make_shared<ExportArgs>();
  CLI::App* cmd = app.add_subcommand("export", "Convert a saved model (.glia) to ONNX");
  cmd->add_option("model", a->input, "The saved model (model.save)")->required();
  cmd->add_option("output", a->output, "The ONNX file to write")->required();
  cmd->add_option("--opset", a->opset, "ONNX opset (17 or newer)")->capture_default_str();
  cmd->add_flag("--fixed-batch", a->fixed_batch, "Give the inputs a batch of 1 instead of a symbolic batch");
  cmd->callback([a] { run(*a); });
}

}  // namespace glia::cli
