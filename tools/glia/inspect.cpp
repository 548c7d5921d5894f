// glia summary / glia predict: look into a saved model (.glia) and run it on data files.
//
//   glia summary model.glia
//   glia predict model.glia t10k-images-idx3-ubyte.gz --scale 255 --argmax -o classes.csv
#include <glia/glia.h>

#include <cstdio>
#include <fstream>
#include <iostream>

#include "commands.h"

namespace glia::cli {
namespace {

void summary(const std::string& path) {
  ModelPtr m = load_model(path);
  m->summary(std::cout);
  if (!m->compiled()) {
    std::cout << "Not compiled (no optimizer state).\n";
    return;
  }
  const auto& opt = *m->optimizer();
  std::cout << "Optimizer: " << opt.class_name() << " " << opt.config().dump() << "\n"
            << "Optimizer iterations: " << opt.iterations() << "\n";
  std::cout << "Loss:";
  for (const auto& l : m->losses()) std::cout << " " << losses::to_config(*l).dump();
  std::cout << "\n";
  auto metrics = m->metrics();
  if (!metrics.empty()) {
    std::cout << "Metrics:";
    for (const auto& mt : metrics) std::cout << " " << mt->name();
    std::cout << "\n";
  }
}

struct PredictArgs {
  std::string model, input, output;
  std::string format = "auto";
  bool header = false;
  double scale = 1.0;
  bool argmax = false;
  int64_t batch_size = 256;
};

/// Whether the file's name says CSV (else it is read as IDX, raw or gzip).
bool is_csv(const PredictArgs& a) {
  if (a.format != "auto") return a.format == "csv";
  auto ends = [&](const char* s) {
    std::string t = s;
    return a.input.size() >= t.size() && a.input.compare(a.input.size() - t.size(), t.size(), t) == 0;
  };
  return ends(".csv") || ends(".CSV") || ends(".txt");
}

void predict(const PredictArgs& a) {
  GLIA_CHECK(a.format == "auto" || a.format == "csv" || a.format == "idx", ValueError,
             "predict: --format must be auto, csv or idx, got '", a.format, "'");
  GLIA_CHECK(a.scale != 0, ValueError, "predict: --scale must not be 0");
  ModelPtr m = load_model(a.model);
  GLIA_CHECK(m->num_inputs() == 1, ValueError, "predict: model \"", m->name(), "\" takes ", m->num_inputs(),
             " inputs; glia predict feeds one");
  Tensor x = is_csv(a) ? data::read_csv(a.input, {.header = a.header}) : data::read_idx(a.input);
  GLIA_CHECK(x.dim() >= 1 && x.size(0) > 0, ValueError, "predict: ", a.input, " holds no samples");
  // The model's input shape (without the batch) decides how each sample is laid out: 784 CSV
  // columns or a 28x28 IDX image both feed a [28, 28, 1] input.
  std::vector<Shape> shapes = m->built_input_shapes();
  GLIA_CHECK(shapes.size() == 1, ValueError, "predict: model \"", m->name(), "\" has no known input shape");
  Shape want = {x.size(0)};
  int64_t per_sample = 1;
  for (int64_t d : shapes[0]) {
    want.push_back(d);
    per_sample *= d;
  }
  GLIA_CHECK(x.numel() == x.size(0) * per_sample, ShapeError, "predict: model \"", m->name(),
             "\" takes samples of shape ", to_string(shapes[0]), " (", per_sample, " values), but ", a.input,
             " has samples of shape ", to_string(Shape(x.shape().begin() + 1, x.shape().end())));
  DType in_dtype = m->is_functional() ? m->inputs()[0].dtype() : DType::f32;
  Tensor xf = x.reshape(want).to(in_dtype);
  if (is_floating(in_dtype) && a.scale != 1.0) xf = xf / a.scale;
  Tensor out = m->predict(xf, {.batch_size = a.batch_size, .verbose = 0});
  out = out.reshape({out.size(0), -1}).to(DType::f64).contiguous();

  std::ofstream file;
  if (!a.output.empty()) {
    file.open(a.output);
    if (!file) throw IOError(a.output, "cannot open for writing");
  }
  std::ostream& os = a.output.empty() ? std::cout : file;
  const int64_t n = out.size(0), k = out.size(1);
  auto v = out.to_vector<double>();
  char buf[32];
  for (int64_t i = 0; i < n; ++i) {
    const double* row = v.data() + i * k;
    if (a.argmax) {
      int64_t best = 0;
      for (int64_t j = 1; j < k; ++j)
        if (row[j] > row[best]) best = j;
      os << best << "\n";
      continue;
    }
    for (int64_t j = 0; j < k; ++j) {
      std::snprintf(buf, sizeof buf, "%.9g", row[j]);
      os << (j ? "," : "") << buf;
    }
    os << "\n";
  }
  if (!a.output.empty()) {
    file.close();
    if (!file) throw IOError(a.output, "writing failed");
  }
}

}  // namespace

void add_summary(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("summary", "Print a saved model's layers, shapes, parameters and optimizer");
  cmd->add_option("model", *path, "Model file written by Model::save (.glia)")->required();
  cmd->callback([path] { summary(*path); });
}

void add_predict(CLI::App& app) {
  auto a = std::make_shared<PredictArgs>();
  CLI::App* cmd = app.add_subcommand("predict", "Run a saved model on the samples of an IDX or CSV file");
  cmd->add_option("model", a->model, "Model file written by Model::save (.glia)")->required();
  cmd->add_option("input", a->input, "IDX file (raw or .gz, as MNIST's) or CSV file, one sample per row")->required();
  cmd->add_option("-o,--output", a->output, "CSV file for the outputs (default: standard output)");
  cmd->add_option("--format", a->format, "auto (by the file name), idx or csv")->capture_default_str();
  cmd->add_flag("--header", a->header, "The CSV file's first line is a header");
  cmd->add_option("--scale", a->scale, "Divide the inputs by this first (255 for 8-bit images)")->capture_default_str();
  cmd->add_flag("--argmax", a->argmax, "Print the index of the largest output (the class) instead of the outputs");
  cmd->add_option("--batch-size", a->batch_size, "Batch size")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->callback([a] { predict(*a); });
}

}  // namespace glia::cli
