// glia train: the main job. Trains a model on Fashion-MNIST (default), MNIST or CIFAR-10.
#include <glia/glia.h>

#include <chrono>
#include <iomanip>
#include <iostream>

#include "commands.h"

namespace glia::cli {
namespace {

struct TrainArgs {
  std::string model = "default";
  std::string dataset = "fashion_mnist";
  std::string data;
  int64_t epochs = 12;
  int64_t batch_size = 128;
  double lr = 1e-3;
  int verbose = 1;
  int64_t limit = 0;
  uint64_t seed = 42;
  std::string history = "history.csv";
  std::string schedule = "auto";
  bool run_eagerly = false;
  std::string device = "cpu";
  int64_t steps_per_execution = 1;
  std::string backup_dir;
  int64_t backup_every = 0;
  std::string checkpoint;
  std::string save;
};

void run(const TrainArgs& a) {
  manual_seed(a.seed);
  auto t0 = std::chrono::steady_clock::now();
  datasets::Data d;
  if (a.dataset == "fashion_mnist")
    d = a.data.empty() ? datasets::fashion_mnist::load_data() : datasets::fashion_mnist::load_data(a.data);
  else if (a.dataset == "mnist")
    d = datasets::mnist::load_data(a.data.empty() ? "/usr/share/datasets/mnist" : a.data);
  else if (a.dataset == "cifar10")
    d = datasets::cifar10::load_data(a.data.empty() ? "cifar-10-batches-bin" : a.data);
  else
    throw ValueError("train: unknown dataset '" + a.dataset + "': expected fashion_mnist, mnist or cifar10");

  // Images as float32 in [0, 1], NHWC; labels as int64 class indices.
  auto images = [](const Tensor& x) {
    Tensor f = x.to(float32) / 255.0;
    return f.dim() == 3 ? f.unsqueeze(-1) : f;
  };
  Tensor x_train = images(d.train.x), x_test = images(d.test.x);
  Tensor y_train = d.train.y.reshape({-1}).to(int64), y_test = d.test.y.reshape({-1}).to(int64);
  if (a.limit > 0) {
    x_train = x_train.narrow(0, 0, std::min(a.limit, x_train.size(0)));
    y_train = y_train.narrow(0, 0, std::min(a.limit, y_train.size(0)));
  }
  Shape input(x_train.shape().begin() + 1, x_train.shape().end());

  std::shared_ptr<Sequential> model;
  if (a.model == "default")
    model = zoo::default_cnn(input, 10);
  else if (a.model == "cnn")
    model = zoo::tutorial_cnn(input, 10);
  else if (a.model == "mlp")
    model = zoo::tutorial_mlp(input, 10);
  else
    throw ValueError("train: unknown model '" + a.model + "': expected default, cnn or mlp");

  // The default model decays the rate on a cosine over the whole run: a smooth end of training is
  // worth about half a point of accuracy at the same cost. The tutorial models keep their
  // tutorials' constant rate, so that they compare with the originals.
  std::string schedule = a.schedule == "auto" ? (a.model == "default" ? "cosine" : "constant") : a.schedule;
  if (schedule != "cosine" && schedule != "constant")
    throw ValueError("train: unknown schedule '" + schedule + "': expected auto, cosine or constant");
  int64_t steps = a.epochs * ((x_train.size(0) + a.batch_size - 1) / a.batch_size);
  optimizers::LearningRate lr = a.lr;
  if (schedule == "cosine") lr = std::make_shared<optimizers::schedules::CosineDecay>(a.lr, steps);
  std::optional<Device> device;
  if (Device d = Device::parse(a.device); !d.is_cpu()) device = d;
  model->compile({.optimizer = std::make_shared<optimizers::Adam>(lr),
                  .loss = "sparse_categorical_crossentropy",
                  .metrics = {"accuracy"},
                  .run_eagerly = a.run_eagerly,
                  .device = device,
                  .steps_per_execution = a.steps_per_execution});
  if (a.verbose > 0) model->summary();
  std::vector<callbacks::CallbackPtr> cbs;
  std::shared_ptr<callbacks::BackupAndRestore> backup;
  if (!a.backup_dir.empty()) {
    backup = std::make_shared<callbacks::BackupAndRestore>(
        a.backup_dir, callbacks::BackupAndRestoreOptions{.save_freq = a.backup_every});
    cbs.push_back(backup);
    // Says where a run resumed, before the first batch it trains.
    auto note = std::make_shared<callbacks::LambdaCallback>();
    note->on_train_begin_fn = [backup](const Logs&) {
      if (auto r = backup->resumed_from())
        std::cout << "Resumed from " << backup->backup_path() << " at epoch " << r->first + 1 << ", batch " << r->second
                  << std::endl;
    };
    cbs.push_back(note);
  }
  if (!a.checkpoint.empty())
    cbs.push_back(std::make_shared<callbacks::ModelCheckpoint>(
        a.checkpoint, callbacks::ModelCheckpointOptions{
                          .monitor = "val_accuracy", .verbose = a.verbose > 0 ? 1 : 0, .save_best_only = true}));
  auto history = model->fit(x_train, y_train,
                            {.epochs = a.epochs,
                             .batch_size = a.batch_size,
                             .validation_data = {x_test, y_test},
                             .callbacks = cbs,
                             .verbose = a.verbose});
  Logs test = model->evaluate(x_test, y_test, {.batch_size = 256, .verbose = 0});
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << std::fixed << std::setprecision(4) << "Test loss: " << test["loss"]
            << " - test accuracy: " << test["accuracy"] << " - " << std::setprecision(1) << secs << "s total\n";
  if (!a.save.empty()) {
    model->save(a.save);
    std::cout << "Model written to " << a.save << "\n";
  }
  if (!a.history.empty()) {
    history.to_csv(a.history);
    std::cout << "History written to " << a.history << "\n";
  }
}

}  // namespace

void add_train(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "Train an image classifier (Fashion-MNIST by default)");
  cmd->add_option("--model", a->model, "default, cnn (the Keras CIFAR tutorial CNN) or mlp")->capture_default_str();
  cmd->add_option("--dataset", a->dataset, "fashion_mnist, mnist or cifar10")->capture_default_str();
  cmd->add_option("--data", a->data, "Directory with the dataset files (default: the Debian package's)");
  cmd->add_option("--epochs", a->epochs, "Epochs")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--batch-size", a->batch_size, "Batch size")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--lr", a->lr, "Adam learning rate")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--schedule", a->schedule,
                  "Learning rate: cosine (decay to 0 over the run), constant, or auto (cosine for the default "
                  "model, constant for the tutorial ones)")
      ->capture_default_str();
  cmd->add_option("--verbose", a->verbose, "0 silent, 1 progress bar, 2 one line per epoch")->capture_default_str();
  cmd->add_option("--limit", a->limit, "Train on the first N examples only (0: all)")->capture_default_str();
  cmd->add_flag("--run-eagerly", a->run_eagerly, "Run each step op by op instead of as a compiled graph");
  cmd->add_option("--device", a->device, "cpu, cuda or cuda:N (train on that GPU)")->capture_default_str();
  cmd->add_option("--steps-per-execution", a->steps_per_execution,
                  "Read the loss (and update the progress bar) once every N steps, as Keras")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", a->seed, "Random seed")->capture_default_str();
  cmd->add_option("--history", a->history, "CSV file for the training history (empty: none)")->capture_default_str();
  cmd->add_option("--backup-dir", a->backup_dir,
                  "Back training up to this directory as it goes; run the same command again after an "
                  "interruption to resume where it stopped");
  cmd->add_option("--backup-every", a->backup_every, "Back up every N batches (0: at each epoch end)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--checkpoint", a->checkpoint,
                  "Save the model with the best validation accuracy to this file (fields such as {epoch:02d} "
                  "allowed)");
  cmd->add_option("--save", a->save, "Save the trained model to this file (.glia)");
  cmd->callback([a] { run(*a); });
}

}  // namespace glia::cli
