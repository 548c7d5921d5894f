// Subcommands of the `glia` command line.
#pragma once

#include <CLI/CLI.hpp>

namespace glia::cli {

/// `glia train`: trains a model on an image dataset and reports test loss and accuracy.
void add_train(CLI::App& app);
/// `glia graph`: prints a model's compiled step as Graphviz DOT.
void add_graph(CLI::App& app);

}  // namespace glia::cli
