// A vector that keeps its first N elements inline, so shapes, strides and
// op argument lists cost no heap allocation in the common case.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <new>
#include <span>
#include <type_traits>
#include <utility>

namespace glia {

template <class T, size_t N>
class SmallVec {
 public:
  using value_type = T;
  using iterator = T*;
  using const_iterator = const T*;

  SmallVec() = default;
  explicit SmallVec(size_t n) { resize(n); }
  SmallVec(size_t n, const T& v) {
    reserve(n);
    for (size_t i = 0; i < n; ++i) new (data_ + i) T(v);
    size_ = n;
  }
  SmallVec(std::initializer_list<T> il) : SmallVec(il.begin(), il.end()) {}
  template <class It, class = decltype(*std::declval<It>())>
  SmallVec(It first, It last) {
    reserve(static_cast<size_t>(std::distance(first, last)));
    for (; first != last; ++first) new (data_ + size_++) T(*first);
  }
  template <class U, class = std::enable_if_t<std::is_convertible_v<const U&, T>>>
  SmallVec(std::span<const U> s) : SmallVec(s.begin(), s.end()) {}
  SmallVec(const SmallVec& o) : SmallVec(o.begin(), o.end()) {}
  SmallVec(SmallVec&& o) noexcept { take(std::move(o)); }
  SmallVec& operator=(const SmallVec& o) {
    if (this != &o) {
      clear();
      reserve(o.size_);
      for (size_t i = 0; i < o.size_; ++i) new (data_ + i) T(o.data_[i]);
      size_ = o.size_;
    }
    return *this;
  }
  SmallVec& operator=(SmallVec&& o) noexcept {
    if (this != &o) {
      destroy();
      take(std::move(o));
    }
    return *this;
  }
  ~SmallVec() { destroy(); }

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  T& back() { return data_[size_ - 1]; }
  const T& back() const { return data_[size_ - 1]; }
  T& front() { return data_[0]; }
  const T& front() const { return data_[0]; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }
  operator std::span<const T>() const { return {data_, size_}; }

  void reserve(size_t n) {
    if (n <= cap_) return;
    size_t cap = std::max(n, cap_ * 2);
    T* p = static_cast<T*>(::operator new(cap * sizeof(T), std::align_val_t(alignof(T))));
    for (size_t i = 0; i < size_; ++i) {
      new (p + i) T(std::move(data_[i]));
      data_[i].~T();
    }
    if (data_ != inline_ptr()) ::operator delete(data_, std::align_val_t(alignof(T)));
    data_ = p;
    cap_ = cap;
  }
  void push_back(const T& v) { emplace_back(v); }
  void push_back(T&& v) { emplace_back(std::move(v)); }
  template <class... A>
  T& emplace_back(A&&... a) {
    if (size_ == cap_) {
      T tmp(std::forward<A>(a)...);  // a may alias an element
      reserve(size_ + 1);
      return *new (data_ + size_++) T(std::move(tmp));
    }
    return *new (data_ + size_++) T(std::forward<A>(a)...);
  }
  void pop_back() { data_[--size_].~T(); }
  void resize(size_t n) { resize(n, T()); }
  void resize(size_t n, const T& v) {
    reserve(n);
    while (size_ < n) new (data_ + size_++) T(v);
    while (size_ > n) data_[--size_].~T();
  }
  void clear() {
    for (size_t i = 0; i < size_; ++i) data_[i].~T();
    size_ = 0;
  }
  T* insert(T* pos, const T& v) {
    size_t idx = static_cast<size_t>(pos - data_);
    emplace_back(v);
    std::rotate(data_ + idx, data_ + size_ - 1, data_ + size_);
    return data_ + idx;
  }
  T* erase(T* pos) {
    std::move(pos + 1, end(), pos);
    pop_back();
    return pos;
  }

  friend bool operator==(const SmallVec& a, const SmallVec& b) {
    return a.size_ == b.size_ && std::equal(a.begin(), a.end(), b.begin());
  }
  friend bool operator!=(const SmallVec& a, const SmallVec& b) { return !(a == b); }

 private:
  T* inline_ptr() { return reinterpret_cast<T*>(inline_); }
  void destroy() {
    clear();
    if (data_ != inline_ptr()) ::operator delete(data_, std::align_val_t(alignof(T)));
    data_ = inline_ptr();
    cap_ = N;
  }
  void take(SmallVec&& o) {
    if (o.data_ != o.inline_ptr()) {
      data_ = o.data_;
      cap_ = o.cap_;
      size_ = o.size_;
      o.data_ = o.inline_ptr();
      o.cap_ = N;
      o.size_ = 0;
    } else {
      data_ = inline_ptr();
      cap_ = N;
      for (size_t i = 0; i < o.size_; ++i) new (data_ + i) T(std::move(o.data_[i]));
      size_ = o.size_;
      o.clear();
    }
  }

  alignas(T) unsigned char inline_[N * sizeof(T)];
  T* data_ = inline_ptr();
  size_t size_ = 0;
  size_t cap_ = N;
};

}  // namespace glia
