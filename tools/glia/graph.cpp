// glia graph: draws the compiled step of a zoo model as Graphviz DOT, before or after the passes.
//
//   glia graph --model cnn --step train > step.dot && dot -Tsvg step.dot > step.svg
#include <glia/glia.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "commands.h"

namespace glia::cli {
namespace {

struct GraphArgs {
  std::string model = "cnn";
  std::string step = "train";
  int64_t batch_size = 32;
  std::vector<int64_t> input = {28, 28, 1};
  int64_t classes = 10;
  bool before = false;
  std::string output;
};

void run(const GraphArgs& a) {
  Shape input(a.input.begin(), a.input.end());
  std::shared_ptr<Sequential> model;
  if (a.model == "default")
    model = zoo::default_cnn(input, a.classes);
  else if (a.model == "cnn")
    model = zoo::tutorial_cnn(input, a.classes);
  else if (a.model == "mlp")
    model = zoo::tutorial_mlp(input, a.classes);
  else
    throw ValueError("graph: unknown model '" + a.model + "': expected default, cnn or mlp");
  model->compile({.optimizer = "adam", .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});

  Shape xs = {a.batch_size};
  for (int64_t d : input) xs.push_back(d);
  std::vector<Tensor> in = {zeros(xs)};
  if (a.step != "predict") in.push_back(zeros({a.batch_size}, {.dtype = int64}));
  Function& f = model->step_function(a.step);
  const std::string& dot = a.before ? f.dot_before_passes(in) : f.graph_for(in).to_dot();

  // What the passes did, on stderr, so that stdout stays a DOT file.
  int before = 0, after = 0;
  for (auto& [op, n] : f.op_counts_before_passes(in)) before += n;
  for (auto& [op, n] : f.graph_for(in).op_counts()) after += n;
  const auto& s = f.pass_stats(in);
  const auto& plan = f.plan_for(in);
  std::cerr << model->name() << " " << a.step << " step, batch " << a.batch_size << ": " << before
            << " op nodes traced, " << after << " after the passes (" << s.dead << " dead, " << s.folded << " folded, "
            << s.merged << " merged, " << s.simplified << " simplified, " << s.fused << " fused, " << s.scheduled
            << " updates moved up); arena " << plan.arena_bytes() / 1024 << " KiB for " << plan.unshared_bytes() / 1024
            << " KiB of intermediates\n";

  if (a.output.empty()) {
    std::cout << dot;
    return;
  }
  // Written to a temporary name and renamed, so that a failed write never leaves half a file.
  std::string tmp = a.output + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) throw IOError(a.output, "cannot write the DOT file");
    out << dot;
    if (!out.flush()) throw IOError(a.output, "write failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, a.output, ec);
  if (ec) throw IOError(a.output, "cannot rename the temporary file: " + ec.message());
}

}  // namespace

void add_graph(CLI::App& app) {
  auto a = std::make_shared<GraphArgs>();
  CLI::App* cmd = app.add_subcommand("graph", "Print a model's compiled step as a Graphviz DOT graph");
  cmd->add_option("--model", a->model, "default, cnn (the Keras CIFAR tutorial CNN) or mlp")->capture_default_str();
  cmd->add_option("--step", a->step, "train, test or predict")
      ->capture_default_str()
      ->check(CLI::IsMember({"train", "test", "predict"}));
  cmd->add_option("--batch-size", a->batch_size, "Batch size")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--input", a->input, "Input shape without the batch, e.g. 28 28 1")->capture_default_str();
  cmd->add_option("--classes", a->classes, "Number of classes")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_flag("--before-passes", a->before, "Draw the graph as traced, before the optimization passes");
  cmd->add_option("-o,--output", a->output, "Write the DOT text to this file (default: standard output)");
  cmd->callback([a] { run(*a); });
}

}  // namespace glia::cli
