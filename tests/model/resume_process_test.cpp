// A real training process (`glia train --backup-dir`), killed with SIGKILL mid-run and started
// again with the same command, ends with the same weights as a run that was never interrupted.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "model/model_testing.h"

extern char** environ;

using namespace glia;
using glia::testing::same_weights;
using glia::testing::temp_dir;
namespace fs = std::filesystem;

namespace {

const std::string kGlia = std::string(GLIA_BINARY_DIR) + "/tools/glia";

pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

/// The (epoch, batch) a backup file says training continues from, or nullopt if there is none
/// (yet, or it vanished: the run finished and deleted it).
std::optional<std::pair<int64_t, int64_t>> backup_position(const std::string& path) {
  if (!fs::exists(path)) return std::nullopt;
  try {
    Config meta = Config::parse(io::read_zip(path, {"metadata.json"}).at("metadata.json"));
    const Config& f = meta.at("extra").at("fit");
    return std::make_pair(f.at("epoch").get<int64_t>(), f.at("step").get<int64_t>());
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace

TEST(ResumeProcess, AKilledTrainingRunResumesToTheSameWeights) {
  if (!fs::exists(kGlia)) GTEST_SKIP() << "the glia tool is not built (GLIA_BUILD_EXAMPLES=OFF)";
  if (!fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)";
  std::string dir = temp_dir();
  // The default CNN has batch norm and dropout: its state includes moving statistics and the
  // random generator. 1024 samples, batches of 64: 16 batches per epoch, backups every 5.
  std::vector<std::string> base = {kGlia, "train",     "--limit", "1024",      "--epochs", "3",      "--batch-size",
                                   "64",  "--verbose", "0",       "--history", "",         "--seed", "5"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };

  // The run that is never interrupted.
  pid_t p = spawn(with({"--save", dir + "/straight.glia"}), dir + "/straight.log");
  ASSERT_GT(p, 0);
  int status = 0;
  ASSERT_EQ(waitpid(p, &status, 0), p);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << slurp(dir + "/straight.log");

  // The same run with backups, killed as soon as a backup from the middle of epoch 2 exists.
  std::vector<std::string> resumable =
      with({"--backup-dir", dir + "/backup", "--backup-every", "5", "--save", dir + "/resumed.glia"});
  std::string backup = dir + "/backup/backup.glia";
  p = spawn(resumable, dir + "/killed.log");
  ASSERT_GT(p, 0);
  std::optional<std::pair<int64_t, int64_t>> at;
  bool exited = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (std::chrono::steady_clock::now() < deadline) {
    at = backup_position(backup);
    if (at && at->first >= 1 && at->second > 0) break;
    if (waitpid(p, &status, WNOHANG) == p) {
      exited = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_FALSE(exited) << "the run ended before it could be killed:\n" << slurp(dir + "/killed.log");
  ASSERT_EQ(kill(p, SIGKILL), 0);
  ASSERT_EQ(waitpid(p, &status, 0), p);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  ASSERT_FALSE(fs::exists(dir + "/resumed.glia")) << "killed before it finished";
  ASSERT_TRUE(fs::exists(backup));

  // The same command again: it resumes from the backup and finishes.
  p = spawn(resumable, dir + "/resumed.log");
  ASSERT_GT(p, 0);
  ASSERT_EQ(waitpid(p, &status, 0), p);
  std::string log = slurp(dir + "/resumed.log");
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << log;
  EXPECT_THAT(log, ::testing::HasSubstr("Resumed from " + backup + " at epoch"));
  EXPECT_FALSE(fs::exists(backup)) << "a finished run deletes its backup";

  ModelPtr straight = load_model(dir + "/straight.glia"), resumed = load_model(dir + "/resumed.glia");
  EXPECT_TRUE(same_weights(resumed->get_weights(), straight->get_weights()));
  EXPECT_EQ(resumed->optimizer()->iterations(), straight->optimizer()->iterations());
  EXPECT_EQ(straight->optimizer()->iterations(), 48);
}
