#pragma once

// What waits in one direction of a proxied connection (proxy/relay.cpp): bytes in a ring
// borrowed from a pool of fixed-size buffers only while non-empty, and the descriptors
// attached to byte positions in it. Bounded by ProxyLimits (S6).

#include <sys/mman.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <new>
#include <vector>

#include "sys/fd.hpp"

namespace sockhook {

/// Frees a buffer of `size` bytes straight back to the kernel (munmap).
struct Unmap {
  size_t size = 0;
  void operator()(char* p) const {
    if (p) munmap(p, size);
  }
};
using Buffer = std::unique_ptr<char[], Unmap>;

/// Fixed-size byte buffers, recycled so that relaying does not allocate per message. Each
/// buffer is its own mapping: one that leaves the pool goes back to the kernel at once,
/// whatever malloc would keep, so the proxy shrinks again when connections end.
class BufferPool {
 public:
  /// Buffers kept for reuse, so that the hot path does not allocate.
  static constexpr size_t kPooled = 4;

  explicit BufferPool(size_t size) : size_(size) {}
  size_t buffer_size() const { return size_; }
  Buffer get() {
    if (free_.empty()) {
      void* p = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) throw std::bad_alloc();
      return Buffer(static_cast<char*>(p), Unmap{size_});
    }
    auto buffer = std::move(free_.back());
    free_.pop_back();
    return buffer;
  }
  void put(Buffer buffer) {
    if (buffer && free_.size() < kPooled) free_.push_back(std::move(buffer));
  }

 private:
  size_t size_;
  std::vector<Buffer> free_;
};

/// Descriptors that arrived with the byte at stream position `pos`; they leave with it.
struct FdBatch {
  uint64_t pos;
  std::vector<Fd> fds;
};

/// What waits to be written in one direction: a ring of bytes (borrowed from the pool only
/// while non-empty) and the descriptors attached to byte positions in it.
class Queue {
 public:
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t fd_count() const { return fd_count_; }
  size_t free_space(const BufferPool& pool) const { return pool.buffer_size() - size_; }

  /// Up to two iovecs covering the free space; borrows a buffer if needed.
  int free_iov(BufferPool& pool, iovec (&iov)[2]) {
    if (!buffer_) buffer_ = pool.get();
    return ring_iov(pool, (head_ + size_) % pool.buffer_size(), free_space(pool), iov);
  }

  /// Records `n` bytes just read into the free space, and the fds that came with them.
  void commit(size_t n, std::vector<Fd>&& fds) {
    if (!fds.empty()) {
      fd_count_ += fds.size();
      batches_.push_back({sent_ + size_, std::move(fds)});
    }
    size_ += n;
  }

  /// Up to two iovecs for the next sendmsg, and the fds that must go with it. A message
  /// never crosses the start of the next fd batch, so fds keep their byte position.
  int data_iov(const BufferPool& pool, iovec (&iov)[2], std::vector<Fd>** fds) {
    size_t limit = size_;
    *fds = nullptr;
    if (!batches_.empty()) {
      if (batches_.front().pos == sent_) {
        *fds = &batches_.front().fds;
        if (batches_.size() > 1) limit = static_cast<size_t>(batches_[1].pos - sent_);
      } else {
        limit = static_cast<size_t>(batches_.front().pos - sent_);
      }
    }
    return ring_iov(pool, head_, limit, iov);
  }

  /// Records that `n` (> 0) bytes were sent; the fds of the front batch went with them if
  /// `with_fds`.
  void consume(size_t n, bool with_fds, BufferPool& pool) {
    if (with_fds) {
      fd_count_ -= batches_.front().fds.size();
      batches_.pop_front();  // our copies close; the kernel holds its own references
    }
    head_ = (head_ + n) % pool.buffer_size();
    size_ -= n;
    sent_ += n;
    if (size_ == 0) {
      head_ = 0;
      pool.put(std::move(buffer_));
    }
  }

  /// Returns the buffer if nothing is queued: an idle direction holds no memory.
  void release_if_empty(BufferPool& pool) {
    if (size_ == 0 && buffer_) {
      head_ = 0;
      pool.put(std::move(buffer_));
    }
  }

  /// Drops everything queued, closing the fds, and returns the buffer.
  void clear(BufferPool& pool) {
    sent_ += size_;
    size_ = 0;
    head_ = 0;
    batches_.clear();
    fd_count_ = 0;
    pool.put(std::move(buffer_));
  }

 private:
  /// The iovecs (one, or two where the ring wraps) for `len` bytes from offset `start`.
  int ring_iov(const BufferPool& pool, size_t start, size_t len, iovec (&iov)[2]) const {
    const size_t first = std::min(len, pool.buffer_size() - start);
    iov[0] = {buffer_.get() + start, first};
    iov[1] = {buffer_.get(), len - first};
    return len > first ? 2 : 1;
  }

  Buffer buffer_;
  size_t head_ = 0;
  size_t size_ = 0;
  uint64_t sent_ = 0;  // stream position of buffer_[head_]
  std::deque<FdBatch> batches_;
  size_t fd_count_ = 0;
};

}  // namespace sockhook
