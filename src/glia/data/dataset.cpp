// The pipeline: one node class per transformation, and for each a per-pass
// iterator. Row mode (PassIterator::rows / next_row) lets shuffle, take, skip
// and repeat pass row numbers of a from_tensors dataset along, so that batch()
// builds a batch with one gather of rows instead of element by element.
#include "glia/data/dataset.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>

#include "glia/autograd/autograd.h"
#include "glia/core/cuda.h"
#include "glia/core/random.h"
#include "glia/ops/shape_ops.h"

namespace glia::data {

using detail::DatasetNode;
using detail::PassIterator;
using NodePtr = std::shared_ptr<const DatasetNode>;

bool PassIterator::next_row(int64_t&) {
  throw InternalError("PassIterator::next_row called on a pass that does not produce rows");
}

namespace {

// A new contiguous CPU tensor for a batch: page-locked with `pinned`.
Tensor batch_tensor(const Shape& shape, DType dtype, bool pinned) {
  return pinned ? cuda::empty_pinned(shape, dtype) : Tensor::empty(shape, dtype);
}

// The rows `idx` of each of `src` (contiguous CPU tensors) as new contiguous tensors. Batches for a
// GPU (`pinned`) of 1 MiB or more are gathered on a few threads: the cores are free while a GPU
// trains, and one thread's copy (~0.4 ms for a batch of 1024 MNIST images) would bound the step.
Element gather_rows(const Element& src, const std::vector<int64_t>& idx, bool pinned) {
  Element out;
  out.reserve(src.size());
  const auto k = static_cast<int64_t>(idx.size());
  for (const Tensor& t : src) {
    Shape shape = t.shape();
    shape[0] = k;
    Tensor dst = batch_tensor(shape, t.dtype(), pinned);
    const size_t row = t.size(0) ? t.nbytes() / static_cast<size_t>(t.size(0)) : 0;
    out.push_back(dst);
    if (row == 0) continue;
    const auto* s = static_cast<const char*>(t.data_ptr());
    auto* d = static_cast<char*>(dst.data_ptr());
    // Rows [lo, hi); runs of consecutive rows (an unshuffled dataset) go in one copy.
    auto copy_rows = [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi;) {
        int64_t j = i + 1;
        while (j < hi && idx[j] == idx[j - 1] + 1) ++j;
        std::memcpy(d + static_cast<size_t>(i) * row, s + static_cast<size_t>(idx[i]) * row,
                    static_cast<size_t>(j - i) * row);
        i = j;
      }
    };
    const int threads = pinned && static_cast<size_t>(k) * row >= (size_t{1} << 20)
                            ? static_cast<int>(std::min<int64_t>({4, k, std::max(1, omp_get_num_procs() / 2)}))
                            : 1;
    if (threads > 1) {
#pragma omp parallel for num_threads(threads) schedule(static)
      for (int q = 0; q < threads; ++q) copy_rows(k * q / threads, k * (q + 1) / threads);
    } else {
      copy_rows(0, k);
    }
  }
  return out;
}

// Stacks elements of equal structure along a new leading dimension.
Element stack_elements(const std::vector<Element>& elems, bool pinned) {
  const Element& first = elems.front();
  for (size_t e = 1; e < elems.size(); ++e) {
    GLIA_CHECK(elems[e].size() == first.size(), ValueError, "batch: element ", e, " of the batch has ", elems[e].size(),
               " components, the first has ", first.size());
    for (size_t c = 0; c < first.size(); ++c) {
      const Tensor &a = first[c], &b = elems[e][c];
      GLIA_CHECK(a.shape() == b.shape(), ShapeError, "batch: component ", c, " of element ", e,
                 " of the batch has shape ", b.shape(), ", the first has ", a.shape(),
                 "; batched elements must have equal shapes");
      GLIA_CHECK(a.dtype() == b.dtype(), DTypeError, "batch: component ", c, " of element ", e,
                 " of the batch has dtype ", b.dtype(), ", the first has ", a.dtype());
    }
  }
  Element out;
  for (size_t c = 0; c < first.size(); ++c) {
    if (!first[c].device().is_cpu()) {
      std::vector<Tensor> parts;
      for (const Element& e : elems) parts.push_back(e[c]);
      out.push_back(stack(parts, 0));
      continue;
    }
    Shape shape{static_cast<int64_t>(elems.size())};
    for (int64_t d : first[c].shape()) shape.push_back(d);
    Tensor dst = batch_tensor(shape, first[c].dtype(), pinned);
    auto* d = static_cast<char*>(dst.data_ptr());
    const size_t bytes = first[c].nbytes();
    for (size_t e = 0; e < elems.size(); ++e) {
      Tensor src = elems[e][c].contiguous();
      std::memcpy(d + e * bytes, src.data_ptr(), bytes);
    }
    out.push_back(std::move(dst));
  }
  return out;
}

// Passes that can produce rows give elements as row views through this.
Element row_element(const Element& rows, int64_t i) {
  Element out;
  out.reserve(rows.size());
  for (const Tensor& t : rows) out.push_back(t.select(0, i));
  return out;
}

// ---------------------------------------------------------------- from_tensors

class SliceNode final : public DatasetNode {
 public:
  SliceNode(Element ts, int64_t n) : tensors_(std::move(ts)), n_(n) {}
  std::unique_ptr<PassIterator> start() const override;
  std::optional<int64_t> cardinality() const override { return n_; }

 private:
  Element tensors_;
  int64_t n_;
  friend class SliceIter;
};

class SliceIter final : public PassIterator {
 public:
  explicit SliceIter(const SliceNode& node) : node_(node) {}
  const Element* rows() const override { return &node_.tensors_; }
  bool next_row(int64_t& row) override {
    if (i_ >= node_.n_) return false;
    row = i_++;
    return true;
  }
  bool next(Element& out) override {
    int64_t r;
    if (!next_row(r)) return false;
    out = row_element(node_.tensors_, r);
    return true;
  }

 private:
  const SliceNode& node_;
  int64_t i_ = 0;
};

std::unique_ptr<PassIterator> SliceNode::start() const { return std::make_unique<SliceIter>(*this); }

// Passes refer to their nodes, which the Dataset::iterator keeps alive through the root node.
class Unary : public DatasetNode {
 public:
  explicit Unary(NodePtr up) : up_(std::move(up)) {}
  void save_passes(std::vector<uint64_t>& out) const override { up_->save_passes(out); }
  void restore_passes(const std::vector<uint64_t>& in, size_t& pos) const override { up_->restore_passes(in, pos); }

 protected:
  NodePtr up_;
};

// ---------------------------------------------------------------- shuffle

class ShuffleNode final : public Unary {
 public:
  ShuffleNode(NodePtr up, int64_t buffer, uint64_t seed, bool reshuffle)
      : Unary(std::move(up)), buffer_(buffer), seed_(seed), reshuffle_(reshuffle) {}
  std::unique_ptr<PassIterator> start() const override;
  std::optional<int64_t> cardinality() const override { return up_->cardinality(); }
  void save_passes(std::vector<uint64_t>& out) const override {
    out.push_back(passes_.load());
    up_->save_passes(out);
  }
  void restore_passes(const std::vector<uint64_t>& in, size_t& pos) const override {
    GLIA_CHECK(pos < in.size(), ValueError, "Dataset::set_shuffle_state: the state has ", in.size(),
               " pass counter(s), but this pipeline has more shuffles");
    passes_.store(in[pos++]);
    up_->restore_passes(in, pos);
  }

 private:
  int64_t buffer_;
  uint64_t seed_;
  bool reshuffle_;
  // Counts passes, so that each pass of a reshuffling dataset has its own order (as tf.data's
  // seed generator, shared by the copies of the dataset).
  mutable std::atomic<uint64_t> passes_{0};
  friend class ShuffleIter;
};

// tf.data's shuffle buffer: fill it with the first buffer_size elements, then repeatedly emit a
// random slot and refill that slot from upstream. Works on row numbers when upstream gives rows.
class ShuffleIter final : public PassIterator {
 public:
  ShuffleIter(const ShuffleNode& node, std::unique_ptr<PassIterator> up, uint64_t pass)
      : node_(node), up_(std::move(up)), row_mode_(up_->rows() != nullptr), pass_(pass) {}
  const Element* rows() const override { return row_mode_ ? up_->rows() : nullptr; }

  bool next_row(int64_t& row) override {
    if (!filled_) {
      int64_t r;
      while (static_cast<int64_t>(row_buf_.size()) < node_.buffer_ && up_->next_row(r)) row_buf_.push_back(r);
      filled_ = true;
    }
    if (row_buf_.empty()) return false;
    const size_t j = pick(row_buf_.size());
    row = row_buf_[j];
    int64_t r;
    if (!exhausted_ && up_->next_row(r)) {
      row_buf_[j] = r;
    } else {
      exhausted_ = true;
      row_buf_[j] = row_buf_.back();
      row_buf_.pop_back();
    }
    return true;
  }

  bool next(Element& out) override {
    if (row_mode_) {
      int64_t r;
      if (!next_row(r)) return false;
      out = row_element(*up_->rows(), r);
      return true;
    }
    if (!filled_) {
      Element e;
      while (static_cast<int64_t>(buf_.size()) < node_.buffer_ && up_->next(e)) buf_.push_back(std::move(e));
      filled_ = true;
    }
    if (buf_.empty()) return false;
    const size_t j = pick(buf_.size());
    out = std::move(buf_[j]);
    Element e;
    if (!exhausted_ && up_->next(e)) {
      buf_[j] = std::move(e);
    } else {
      exhausted_ = true;
      buf_[j] = std::move(buf_.back());
      buf_.pop_back();
    }
    return true;
  }

 private:
  // Uniform in [0, n) from 64 random bits (the bias, n / 2^64, is negligible).
  size_t pick(size_t n) {
    if (word_ == 4) {
      words_ = random::philox(node_.seed_, pass_, counter_++);
      word_ = 0;
    }
    const uint64_t x = (static_cast<uint64_t>(words_[word_]) << 32) | words_[word_ + 1];
    word_ += 2;
    return static_cast<size_t>((static_cast<unsigned __int128>(x) * n) >> 64);
  }

  const ShuffleNode& node_;
  std::unique_ptr<PassIterator> up_;
  bool row_mode_;
  uint64_t pass_;
  bool filled_ = false, exhausted_ = false;
  std::vector<int64_t> row_buf_;
  std::vector<Element> buf_;
  std::array<uint32_t, 4> words_{};
  int word_ = 4;
  uint64_t counter_ = 0;
};

std::unique_ptr<PassIterator> ShuffleNode::start() const {
  const uint64_t pass = reshuffle_ ? passes_.fetch_add(1) : 0;
  return std::make_unique<ShuffleIter>(*this, up_->start(), pass);
}

// ---------------------------------------------------------------- batch

class BatchNode final : public Unary {
 public:
  BatchNode(NodePtr up, int64_t n, bool drop, bool pin) : Unary(std::move(up)), n_(n), drop_(drop), pin_(pin) {}
  std::unique_ptr<PassIterator> start() const override;
  std::optional<int64_t> cardinality() const override {
    auto c = up_->cardinality();
    if (!c || *c == INFINITE_CARDINALITY) return c;
    return drop_ ? *c / n_ : (*c + n_ - 1) / n_;
  }

 private:
  int64_t n_;
  bool drop_, pin_;
  friend class BatchIter;
};

class BatchIter final : public PassIterator {
 public:
  BatchIter(const BatchNode& node, std::unique_ptr<PassIterator> up) : node_(node), up_(std::move(up)) {}
  bool next(Element& out) override {
    if (const Element* rows = up_->rows()) {
      idx_.clear();
      int64_t r;
      while (static_cast<int64_t>(idx_.size()) < node_.n_ && up_->next_row(r)) idx_.push_back(r);
      if (idx_.empty() || (node_.drop_ && static_cast<int64_t>(idx_.size()) < node_.n_)) return false;
      out = gather_rows(*rows, idx_, node_.pin_);
      return true;
    }
    std::vector<Element> elems;
    Element e;
    while (static_cast<int64_t>(elems.size()) < node_.n_ && up_->next(e)) elems.push_back(std::move(e));
    if (elems.empty() || (node_.drop_ && static_cast<int64_t>(elems.size()) < node_.n_)) return false;
    out = stack_elements(elems, node_.pin_);
    return true;
  }

 private:
  const BatchNode& node_;
  std::unique_ptr<PassIterator> up_;
  std::vector<int64_t> idx_;
};

std::unique_ptr<PassIterator> BatchNode::start() const { return std::make_unique<BatchIter>(*this, up_->start()); }

// ---------------------------------------------------------------- map

class MapNode final : public Unary {
 public:
  MapNode(NodePtr up, Dataset::MapFn fn) : Unary(std::move(up)), fn_(std::move(fn)) {}
  std::unique_ptr<PassIterator> start() const override;
  std::optional<int64_t> cardinality() const override { return up_->cardinality(); }

 private:
  Dataset::MapFn fn_;
  friend class MapIter;
};

class MapIter final : public PassIterator {
 public:
  MapIter(const MapNode& node, std::unique_ptr<PassIterator> up) : node_(node), up_(std::move(up)) {}
  bool next(Element& out) override {
    Element e;
    if (!up_->next(e)) return false;
    no_grad guard;  // preprocessing is not part of a model's gradient
    out = node_.fn_(std::move(e));
    return true;
  }

 private:
  const MapNode& node_;
  std::unique_ptr<PassIterator> up_;
};

std::unique_ptr<PassIterator> MapNode::start() const { return std::make_unique<MapIter>(*this, up_->start()); }

// ---------------------------------------------------------------- repeat

class RepeatNode final : public Unary {
 public:
  RepeatNode(NodePtr up, int64_t count) : Unary(std::move(up)), count_(count) {}
  std::unique_ptr<PassIterator> start() const override;
  std::optional<int64_t> cardinality() const override {
    if (count_ == 0) return 0;
    auto c = up_->cardinality();
    if (!c || *c == 0 || *c == INFINITE_CARDINALITY) return c;
    return count_ < 0 ? INFINITE_CARDINALITY : *c * count_;
  }

 private:
  int64_t count_;
  friend class RepeatIter;
};

// Each repetition is a new upstream pass (so a shuffle upstream reshuffles). Every pass of a node
// produces rows of the same tensors, so rows() of the first pass holds for all.
class RepeatIter final : public PassIterator {
 public:
  explicit RepeatIter(const RepeatNode& node) : node_(node) {
    if (node_.count_ != 0) up_ = node_.up_->start();
  }
  const Element* rows() const override { return up_ ? up_->rows() : nullptr; }
  bool next_row(int64_t& row) override {
    return advance([&] { return up_->next_row(row); });
  }
  bool next(Element& out) override {
    return advance([&] { return up_->next(out); });
  }

 private:
  template <class F>
  bool advance(F&& pull) {
    while (up_) {
      if (pull()) {
        ++in_pass_;
        return true;
      }
      // An empty pass would repeat forever without producing anything.
      if (in_pass_ == 0 || (node_.count_ > 0 && ++done_ >= node_.count_)) {
        up_.reset();
        break;
      }
      in_pass_ = 0;
      up_ = node_.up_->start();
    }
    return false;
  }

  const RepeatNode& node_;
  std::unique_ptr<PassIterator> up_;
  int64_t done_ = 0, in_pass_ = 0;
};

std::unique_ptr<PassIterator> RepeatNode::start() const { return std::make_unique<RepeatIter>(*this); }

// ---------------------------------------------------------------- take / skip

class TakeNode final : public Unary {
 public:
  TakeNode(NodePtr up, int64_t n) : Unary(std::move(up)), n_(n) {}
  std::unique_ptr<PassIterator> start() const override;
  std::optional<int64_t> cardinality() const override {
    auto c = up_->cardinality();
    if (n_ < 0 || (c && *c != INFINITE_CARDINALITY && *c < n_)) return c;
    if (n_ == 0 || (c && *c == INFINITE_CARDINALITY)) return n_;
    return c ? std::optional<int64_t>(n_) : std::nullopt;
  }

 private:
  int64_t n_;
  friend class TakeIter;
};

class TakeIter final : public PassIterator {
 public:
  TakeIter(const TakeNode& node, std::unique_ptr<PassIterator> up) : node_(node), up_(std::move(up)) {}
  const Element* rows() const override { return up_->rows(); }
  bool next_row(int64_t& row) override {
    if (node_.n_ >= 0 && taken_ >= node_.n_) return false;
    if (!up_->next_row(row)) return false;
    ++taken_;
    return true;
  }
  bool next(Element& out) override {
    if (node_.n_ >= 0 && taken_ >= node_.n_) return false;
    if (!up_->next(out)) return false;
    ++taken_;
    return true;
  }

 private:
  const TakeNode& node_;
  std::unique_ptr<PassIterator> up_;
  int64_t taken_ = 0;
};

std::unique_ptr<PassIterator> TakeNode::start() const { return std::make_unique<TakeIter>(*this, up_->start()); }

class SkipNode final : public Unary {
 public:
  SkipNode(NodePtr up, int64_t n) : Unary(std::move(up)), n_(n) {}
  std::unique_ptr<PassIterator> start() const override;
  std::optional<int64_t> cardinality() const override {
    auto c = up_->cardinality();
    if (!c || *c == INFINITE_CARDINALITY) return c;
    return n_ < 0 ? 0 : std::max<int64_t>(0, *c - n_);
  }

 private:
  int64_t n_;
  friend class SkipIter;
};

class SkipIter final : public PassIterator {
 public:
  SkipIter(const SkipNode& node, std::unique_ptr<PassIterator> up) : node_(node), up_(std::move(up)) {}
  const Element* rows() const override { return up_->rows(); }
  bool next_row(int64_t& row) override {
    while (skipped_ < node_.n_ || node_.n_ < 0) {
      if (!up_->next_row(row)) return false;
      ++skipped_;
    }
    return up_->next_row(row);
  }
  bool next(Element& out) override {
    while (skipped_ < node_.n_ || node_.n_ < 0) {
      if (!up_->next(out)) return false;
      ++skipped_;
    }
    return up_->next(out);
  }

 private:
  const SkipNode& node_;
  std::unique_ptr<PassIterator> up_;
  int64_t skipped_ = 0;
};

std::unique_ptr<PassIterator> SkipNode::start() const { return std::make_unique<SkipIter>(*this, up_->start()); }

// ---------------------------------------------------------------- prefetch

class PrefetchNode final : public Unary {
 public:
  PrefetchNode(NodePtr up, int64_t buffer) : Unary(std::move(up)), buffer_(buffer) {}
  std::unique_ptr<PassIterator> start() const override;
  std::optional<int64_t> cardinality() const override { return up_->cardinality(); }

 private:
  int64_t buffer_;
  friend class PrefetchIter;
};

// A producer thread pulls the upstream pass into a bounded queue. The upstream pass is started on
// the consumer's thread, so that shuffle orders do not depend on thread timing.
class PrefetchIter final : public PassIterator {
 public:
  PrefetchIter(const PrefetchNode& node, std::unique_ptr<PassIterator> up)
      : capacity_(static_cast<size_t>(node.buffer_)), up_(std::move(up)), thread_([this] { produce(); }) {}

  ~PrefetchIter() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  bool next(Element& out) override {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return !queue_.empty() || finished_; });
    if (!queue_.empty()) {
      out = std::move(queue_.front());
      queue_.pop_front();
      l.unlock();
      cv_.notify_all();
      return true;
    }
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
    return false;
  }

 private:
  void produce() {
    // Kernels called here (map functions, stacking) must not start a second OpenMP team that would
    // compete with the training thread for the cores.
    omp_set_num_threads(1);
    no_grad guard;
    std::exception_ptr error;
    try {
      while (!stopping()) {
        Element e;
        if (!up_->next(e)) break;
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return queue_.size() < capacity_ || stop_; });
        if (stop_) break;
        queue_.push_back(std::move(e));
        l.unlock();
        cv_.notify_all();
      }
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      error_ = error;
      finished_ = true;
    }
    cv_.notify_all();
  }

  bool stopping() {
    std::lock_guard<std::mutex> l(mu_);
    return stop_;
  }

  const size_t capacity_;
  std::unique_ptr<PassIterator> up_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Element> queue_;
  std::exception_ptr error_;
  bool finished_ = false, stop_ = false;
  std::thread thread_;  // last: started once everything above exists
};

std::unique_ptr<PassIterator> PrefetchNode::start() const {
  return std::make_unique<PrefetchIter>(*this, up_->start());
}

}  // namespace

// ---------------------------------------------------------------- Dataset

Dataset Dataset::from_tensors(std::vector<Tensor> ts) {
  GLIA_CHECK(!ts.empty(), ValueError, "Dataset::from_tensors: expected at least one tensor");
  int64_t n = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    GLIA_CHECK(ts[i].defined(), ValueError, "Dataset::from_tensors: tensor ", i, " is undefined");
    GLIA_CHECK(ts[i].dim() >= 1, ShapeError, "Dataset::from_tensors: tensor ", i,
               " is 0-d; slicing needs at least one dimension");
    if (i == 0) n = ts[0].size(0);
    GLIA_CHECK(ts[i].size(0) == n, ShapeError, "Dataset::from_tensors: tensor ", i, " has ", ts[i].size(0),
               " elements along dim 0 (shape ", ts[i].shape(), "), tensor 0 has ", n, " (shape ", ts[0].shape(),
               "); all tensors must have the same first dimension");
    GLIA_CHECK(ts[i].device().is_cpu(), DeviceError, "Dataset::from_tensors: tensor ", i, " is on ", ts[i].device(),
               "; datasets hold CPU tensors");
    ts[i] = ts[i].detach().contiguous();
  }
  return Dataset(std::make_shared<SliceNode>(std::move(ts), n));
}

std::vector<uint64_t> Dataset::shuffle_state() const {
  std::vector<uint64_t> out;
  node_->save_passes(out);
  return out;
}

void Dataset::set_shuffle_state(const std::vector<uint64_t>& state) const {
  size_t pos = 0;
  node_->restore_passes(state, pos);
  GLIA_CHECK(pos == state.size(), ValueError, "Dataset::set_shuffle_state: the state has ", state.size(),
             " pass counter(s), but this pipeline has ", pos, " shuffle(s)");
}

Dataset Dataset::shuffle(int64_t buffer_size, std::optional<uint64_t> seed, bool reshuffle_each_iteration) const {
  GLIA_CHECK(buffer_size >= 1, ValueError, "Dataset::shuffle: buffer_size must be at least 1, got ", buffer_size);
  if (!seed) {
    const auto d = random::reserve(1);
    const auto w = random::philox(d.seed, 0, d.offset);
    seed = (static_cast<uint64_t>(w[0]) << 32) | w[1];
  }
  return Dataset(std::make_shared<ShuffleNode>(node_, buffer_size, *seed, reshuffle_each_iteration));
}

Dataset Dataset::batch(int64_t n, bool drop_remainder, bool pin_memory) const {
  GLIA_CHECK(n >= 1, ValueError, "Dataset::batch: batch size must be at least 1, got ", n);
  GLIA_CHECK(!pin_memory || cuda::is_available(), DeviceError,
             "Dataset::batch: pin_memory needs a CUDA GPU, and none can be used (", cuda::describe(), ")");
  return Dataset(std::make_shared<BatchNode>(node_, n, drop_remainder, pin_memory));
}

Dataset Dataset::map(MapFn fn) const {
  GLIA_CHECK(fn != nullptr, ValueError, "Dataset::map: the function is empty");
  return Dataset(std::make_shared<MapNode>(node_, std::move(fn)));
}

Dataset Dataset::repeat(int64_t count) const {
  GLIA_CHECK(count >= -1, ValueError, "Dataset::repeat: count must be -1 (forever) or at least 0, got ", count);
  return Dataset(std::make_shared<RepeatNode>(node_, count));
}

Dataset Dataset::take(int64_t n) const {
  GLIA_CHECK(n >= -1, ValueError, "Dataset::take: count must be -1 (all) or at least 0, got ", n);
  return Dataset(std::make_shared<TakeNode>(node_, n));
}

Dataset Dataset::skip(int64_t n) const {
  GLIA_CHECK(n >= -1, ValueError, "Dataset::skip: count must be -1 (all) or at least 0, got ", n);
  return Dataset(std::make_shared<SkipNode>(node_, n));
}

Dataset Dataset::prefetch(int64_t buffer) const {
  GLIA_CHECK(buffer >= 1 || buffer == AUTOTUNE, ValueError,
             "Dataset::prefetch: buffer must be at least 1 or AUTOTUNE, got ", buffer);
  // Two batches ahead keep a training step fed while the next one is built.
  return Dataset(std::make_shared<PrefetchNode>(node_, buffer == AUTOTUNE ? 2 : buffer));
}

Dataset::iterator Dataset::begin() const { return iterator(node_, node_->start()); }

Dataset::iterator::iterator(std::shared_ptr<const detail::DatasetNode> node, std::shared_ptr<detail::PassIterator> pass)
    : node_(std::move(node)), pass_(std::move(pass)) {
  ++*this;
}

Dataset::iterator& Dataset::iterator::operator++() {
  if (pass_ && !pass_->next(current_)) {
    pass_.reset();
    current_.clear();
  }
  return *this;
}

}  // namespace glia::data
