// The `glia` command line.
#include <glia/core/cuda.h>
#include <glia/glia.h>

#include <functional>
#include <iostream>
#include <string>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"Glia: deep learning in C++"};
  app.require_subcommand(1);
  // The version, and what CUDA this build and machine have (for bug reports).
  app.set_version_flag("--version", std::function<std::string()>([] {
                         return std::string("glia ") + glia::version() + "\n" + glia::cuda::describe();
                       }));
  glia::cli::add_train(app);
  glia::cli::add_graph(app);
  glia::cli::add_summary(app);
  glia::cli::add_predict(app);
  glia::cli::add_export(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const glia::Error& e) {
    std::cerr << "glia: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
