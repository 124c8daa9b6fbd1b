// Prints what the engine's CUDA fast path relies on, with timings of the primitives.
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/torch.h>

#include <cstdio>

template <typename F>
float TimeMs(F&& f, int iters) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  for (int i = 0; i < 3; ++i) f();
  cudaEventRecord(a, c10::cuda::getCurrentCUDAStream());
  for (int i = 0; i < iters; ++i) f();
  cudaEventRecord(b, c10::cuda::getCurrentCUDAStream());
  cudaEventSynchronize(b);
  float ms = 0;
  cudaEventElapsedTime(&ms, a, b);
  return ms / iters;
}

int main() {
  torch::NoGradGuard no_grad;
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  size_t free_b = 0, total_b = 0;
  cudaMemGetInfo(&free_b, &total_b);
  std::printf("device %s cc %d.%d integrated %d sms %d free %.1f GB total %.1f GB torch %s\n",
              prop.name, prop.major, prop.minor, prop.integrated, prop.multiProcessorCount,
              free_b / 1e9, total_b / 1e9, TORCH_VERSION);
  auto half = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kHalf);
  auto a = torch::randn({8192, 8192}, half), b = torch::randn({8192, 8192}, half);
  float mm = TimeMs([&] { torch::matmul(a, b); }, 10);
  std::printf("fp16 matmul 8192^3: %.2f ms = %.0f TFLOP/s\n", mm, 2.0 * 8192 * 8192 * 8192 / mm / 1e9);
  auto q = torch::randn({2, 10, 4096, 64}, half);
  float sdpa = TimeMs([&] { at::scaled_dot_product_attention(q, q, q); }, 20);
  std::printf("sdpa [2,10,4096,64]: %.3f ms\n", sdpa);
  at::globalContext().setBenchmarkCuDNN(true);
  auto conv = torch::nn::Conv2d(torch::nn::Conv2dOptions(320, 320, 3).padding(1));
  conv->to(torch::kCUDA, torch::kHalf);
  auto x = torch::randn({2, 320, 128, 128}, half);
  float c_nchw = TimeMs([&] { conv->forward(x); }, 20);
  conv->to(torch::kCUDA, torch::kHalf);
  auto xcl = x.contiguous(at::MemoryFormat::ChannelsLast);
  conv->weight.set_data(conv->weight.contiguous(at::MemoryFormat::ChannelsLast));
  float c_cl = TimeMs([&] { conv->forward(xcl); }, 20);
  std::printf("conv 320x320x3x3 on [2,320,128,128]: nchw %.3f ms, channels-last %.3f ms\n", c_nchw, c_cl);
  // CUDA graph capture on a side stream, replay.
  auto stream = c10::cuda::getStreamFromPool();
  at::Tensor out;
  {
    c10::cuda::CUDAStreamGuard guard(stream);
    for (int i = 0; i < 3; ++i) out = conv->forward(xcl);
    stream.synchronize();
    at::cuda::CUDAGraph graph;
    graph.capture_begin();
    out = conv->forward(xcl);
    graph.capture_end();
    float g = TimeMs([&] { graph.replay(); }, 20);
    std::printf("graph replay conv: %.3f ms\n", g);
  }
  auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(0);
  std::printf("peak allocated %.2f GB, peak reserved %.2f GB\n",
              stats.allocated_bytes[0].peak / 1e9, stats.reserved_bytes[0].peak / 1e9);
  c10::cuda::CUDACachingAllocator::resetPeakStats(0);
  return 0;
}
