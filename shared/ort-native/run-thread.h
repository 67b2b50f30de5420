// One OS thread of a session's own that runs its jobs in order (addon.cc: runs of a session created
// with dedicatedThread or enableCudaGraph). The CUDA EP keeps its per-thread state, captured CUDA
// graphs included, per OS thread (onnxruntime/core/providers/cuda/cuda_execution_provider.h,
// PerThreadContext): graph capture and replay must happen on one thread, which libuv's pool does
// not promise. Included from support.h only.
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace ortnative {

class RunThread {
 public:
  RunThread() : thread_([this] { loop(); }) {}
  RunThread(const RunThread&) = delete;
  RunThread& operator=(const RunThread&) = delete;
  // Runs the jobs already posted, then joins. Never called from the thread itself: jobs hold the
  // session (and so this) only until they hand their result to the JS thread.
  ~RunThread() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    ready_.notify_one();
    thread_.join();
  }
  void post(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.push_back(std::move(job));
    }
    ready_.notify_one();
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  bool stop_ = false;
  std::thread thread_;  // last: started once the members it uses exist
};

}  // namespace ortnative
