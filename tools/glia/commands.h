// Subcommands of the `glia` command line.
#pragma once

#include <CLI/CLI.hpp>

namespace glia::cli {

/// `glia train`: trains a model on an image dataset and reports test loss and accuracy.
void add_train(CLI::App& app);
/// `glia graph`: prints a model's compiled step as Graphviz DOT.
void add_graph(CLI::App& app);
/// `glia export`: converts a saved model to ONNX.
void add_export(CLI::App& app);

/// `glia summary`: prints a saved model's summary and compile configuration.
void add_summary(CLI::App& app);
/// `glia predict`: runs a saved model on an IDX or CSV file.
void add_predict(CLI::App& app);

}  // namespace glia::cli
