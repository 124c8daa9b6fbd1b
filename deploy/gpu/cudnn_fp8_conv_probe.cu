// Measures cuDNN's fp8 (e4m3) 3x3 convolution against its fp16 one at SDXL's shapes, through
// cuDNN's graph API (the route LibTorch does not take: its conv2d refuses fp8 tensors).
// For each shape: the fastest of cuDNN's heuristic plans for an fp16 NHWC convolution with
// fp16 output, and for an e4m3 convolution whose float accumulator is scaled per output
// channel (activation scale x weight scale) and written as fp16, i.e. what a quantized
// ResBlock convolution would run; the fp8 result's error against the fp16 one; the cost of
// quantizing the input (which a GroupNorm+SiLU kernel can write directly in fp8).
// Usage: cudnn_fp8_conv_probe [json_out]
#include <cmath>
#include <string>
#include <vector>

#include "cudnn_graph.cuh"

namespace {

using namespace probe;

std::vector<int64_t> Nhwc(int64_t n, int64_t c, int64_t h, int64_t w) { return {h * w * c, 1, w * c, c}; }

struct Shape {
  const char* name;
  int64_t n, h, w, c, k;
};

enum { kX = 1, kW = 2, kY = 3, kAcc = 4, kScale = 5, kScaled = 6, kBias = 7 };

// What follows the convolution: fp16 in and out; e4m3 in, fp16 out with the scale as the
// convolution's alpha; e4m3 in, float accumulator * scale[k] -> fp16; the same + bias[k].
enum class Variant { kFp16, kFp8Alpha, kFp8Scale, kFp8ScaleBias };
const char* Name(Variant v) {
  switch (v) {
    case Variant::kFp16: return "fp16";
    case Variant::kFp8Alpha: return "fp8 alpha";
    case Variant::kFp8Scale: return "fp8 x scale[k]";
    case Variant::kFp8ScaleBias: return "fp8 x scale[k] + bias[k]";
  }
  return "";
}

bool BuildGraph(cudnnHandle_t handle, const Shape& s, Variant v, float alpha, Graph& g) {
  GraphBuilder b(handle);
  const bool fp8 = v == Variant::kFp8Scale || v == Variant::kFp8ScaleBias;
  const cudnnDataType_t in = v == Variant::kFp16 ? CUDNN_DATA_HALF : CUDNN_DATA_FP8_E4M3;
  const auto x = b.Tensor(kX, in, {s.n, s.c, s.h, s.w}, Nhwc(s.n, s.c, s.h, s.w));
  const auto w = b.Tensor(kW, in, {s.k, s.c, 3, 3}, Nhwc(s.k, s.c, 3, 3));
  const std::vector<int64_t> ydims = {s.n, s.k, s.h, s.w}, ystr = Nhwc(s.n, s.k, s.h, s.w);
  const auto acc = fp8 ? b.Tensor(kAcc, CUDNN_DATA_FLOAT, ydims, ystr, true) : b.Tensor(kY, CUDNN_DATA_HALF, ydims, ystr);
  auto conv = std::make_unique<Desc>(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
  const cudnnDataType_t comp = CUDNN_DATA_FLOAT;
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  const int64_t dims = 2, one[2] = {1, 1}, pad[2] = {1, 1};
  conv->Set(CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp)
      .Set(CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode)
      .Set(CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &dims)
      .Set(CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, one)
      .Set(CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, one)
      .Set(CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, pad)
      .Set(CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, pad);
  if (!b.ok() || !conv->Finalize("convolution")) return false;
  const auto conv_desc = b.Keep(std::move(conv));
  auto op = std::make_unique<Desc>(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR);
  const float beta = 0.f;
  op->Set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x)
      .Set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &w)
      .Set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &acc)
      .Set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &conv_desc)
      .Set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha)
      .Set(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &beta);
  b.Op(std::move(op), "convolution op");
  if (fp8) {
    const std::vector<int64_t> cdims = {1, s.k, 1, 1}, cstr = {s.k, 1, s.k, s.k};
    const bool with_bias = v == Variant::kFp8ScaleBias;
    const auto scaled = with_bias ? b.Tensor(kScaled, CUDNN_DATA_FLOAT, ydims, ystr, true)
                                  : b.Tensor(kY, CUDNN_DATA_HALF, ydims, ystr);
    b.Pointwise(CUDNN_POINTWISE_MUL, acc, b.Tensor(kScale, CUDNN_DATA_FLOAT, cdims, cstr), scaled);
    if (with_bias) {
      b.Pointwise(CUDNN_POINTWISE_ADD, scaled, b.Tensor(kBias, CUDNN_DATA_FLOAT, cdims, cstr),
                  b.Tensor(kY, CUDNN_DATA_HALF, ydims, ystr));
    }
  }
  return b.Finish(g, Name(v));
}

// Largest |w| per output channel (rows of `inner` values).
__global__ void RowAmax(const __half* w, float* amax, int64_t inner) {
  float m = 0.f;
  for (int64_t i = threadIdx.x; i < inner; i += blockDim.x) m = fmaxf(m, fabsf(__half2float(w[blockIdx.x * inner + i])));
  __shared__ float part[256];
  part[threadIdx.x] = m;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s /= 2) {
    if (threadIdx.x < s) part[threadIdx.x] = fmaxf(part[threadIdx.x], part[threadIdx.x + s]);
    __syncthreads();
  }
  if (threadIdx.x == 0) amax[blockIdx.x] = part[0];
}

}  // namespace

int main(int argc, char** argv) {
  std::string json;
  cudnnHandle_t handle = OpenCudnn(&json);
  // The UNet's ResBlock convolutions at batch 8 with CFG (16 rows), and the VAE decoder's, one image.
  const std::vector<Shape> shapes = {
      {"unet 128x128x320", 16, 128, 128, 320, 320}, {"unet 64x64x640", 16, 64, 64, 640, 640},
      {"unet 32x32x1280", 16, 32, 32, 1280, 1280},  {"unet 64x64 1280->640", 16, 64, 64, 1280, 640},
      {"vae 1024x1024x128", 1, 1024, 1024, 128, 128}, {"vae 512x512x256", 1, 512, 512, 256, 256},
      {"vae 256x256x512", 1, 256, 256, 512, 512},     {"vae 128x128x512", 1, 128, 128, 512, 512},
  };
  json += ", \"shapes\": [";
  for (size_t si = 0; si < shapes.size(); ++si) {
    const Shape& s = shapes[si];
    const int64_t nx = s.n * s.h * s.w * s.c, nw = s.k * 9 * s.c, ny = s.n * s.h * s.w * s.k;
    __half *x, *w, *y16, *y8;
    __nv_fp8_e4m3 *xq, *wq;
    float *scale, *bias, *inv_w, *inv_x, *amax;
    CHECK_CUDA(cudaMalloc(&x, nx * 2));
    CHECK_CUDA(cudaMalloc(&w, nw * 2));
    CHECK_CUDA(cudaMalloc(&y16, ny * 2));
    CHECK_CUDA(cudaMalloc(&y8, ny * 2));
    CHECK_CUDA(cudaMalloc(&xq, nx));
    CHECK_CUDA(cudaMalloc(&wq, nw));
    CHECK_CUDA(cudaMalloc(&scale, s.k * 4));
    CHECK_CUDA(cudaMalloc(&bias, s.k * 4));
    CHECK_CUDA(cudaMalloc(&inv_w, s.k * 4));
    CHECK_CUDA(cudaMalloc(&inv_x, 4));
    CHECK_CUDA(cudaMalloc(&amax, s.k * 4));
    // Activations of a SiLU(GroupNorm) output (|x| <= 3), weights of a trained conv's range.
    const float x_range = 3.f, w_range = 1.f / std::sqrt(9.f * s.c);
    Fill<<<1024, 256>>>(x, nx, 1234u + si, x_range);
    Fill<<<1024, 256>>>(w, nw, 999u + si, w_range);
    CHECK_CUDA(cudaMemset(bias, 0, s.k * 4));
    // Per-output-channel weight scales, one activation scale (the calibrated maximum).
    RowAmax<<<s.k, 256>>>(w, amax, 9 * s.c);
    std::vector<float> h_amax(s.k), h_scale(s.k), h_inv(s.k);
    CHECK_CUDA(cudaMemcpy(h_amax.data(), amax, s.k * 4, cudaMemcpyDeviceToHost));
    const float sx = x_range / 448.f, inv_sx = 1.f / sx;
    for (int64_t k = 0; k < s.k; ++k) {
      const float sw = std::max(h_amax[k], 1e-12f) / 448.f;
      h_inv[k] = 1.f / sw;
      h_scale[k] = sx * sw;
    }
    CHECK_CUDA(cudaMemcpy(scale, h_scale.data(), s.k * 4, cudaMemcpyHostToDevice));
    CHECK_CUDA(cudaMemcpy(inv_w, h_inv.data(), s.k * 4, cudaMemcpyHostToDevice));
    CHECK_CUDA(cudaMemcpy(inv_x, &inv_sx, 4, cudaMemcpyHostToDevice));
    Quantize<<<1024, 256>>>(w, wq, nw, inv_w, s.k, 9 * s.c);
    auto quantize_x = [&] { Quantize<<<2048, 256>>>(x, xq, nx, inv_x, 1, 1); };
    quantize_x();
    CHECK_CUDA(cudaDeviceSynchronize());
    const float quantize_ms = TimeMs(quantize_x);

    // Each variant's fastest plan; y16 holds the fp16 result, y8 the last fp8 variant's (the
    // alpha variant uses channel 0's scale for all: timed only).
    float ms[4] = {-1, -1, -1, -1};
    int plan_count[4] = {0, 0, 0, 0};
    for (Variant v : {Variant::kFp16, Variant::kFp8Alpha, Variant::kFp8Scale, Variant::kFp8ScaleBias}) {
      const int vi = static_cast<int>(v);
      Graph g;
      if (!BuildGraph(handle, s, v, v == Variant::kFp8Alpha ? h_scale[0] : 1.f, g)) continue;
      auto plans = Plans(handle, g);
      plan_count[vi] = static_cast<int>(plans.size());
      std::vector<int64_t> uids = {kX, kW, kY};
      std::vector<void*> ptrs = {v == Variant::kFp16 ? (void*)x : (void*)xq, v == Variant::kFp16 ? (void*)w : (void*)wq,
                                 v == Variant::kFp16 ? (void*)y16 : (void*)y8};
      if (v == Variant::kFp8Scale || v == Variant::kFp8ScaleBias) uids.push_back(kScale), ptrs.push_back(scale);
      if (v == Variant::kFp8ScaleBias) uids.push_back(kBias), ptrs.push_back(bias);
      const int best = Fastest(handle, plans, uids, ptrs);
      if (best >= 0) ms[vi] = plans[best].ms, RunOnce(handle, plans[best], uids, ptrs);
    }
    const float ms16 = ms[0];
    float ms8 = -1;
    for (int vi = 1; vi < 4; ++vi) if (ms[vi] > 0 && (ms8 < 0 || ms[vi] < ms8)) ms8 = ms[vi];
    // fp8 vs fp16 output: largest difference over the fp16 output's largest value, and RMS ratio.
    double max_err = -1, rms_err = -1;
    if (ms16 > 0 && (ms[2] > 0 || ms[3] > 0)) {  // y8 from a per-channel-scaled variant
      std::vector<__half> a(ny), b(ny);
      CHECK_CUDA(cudaMemcpy(a.data(), y16, ny * 2, cudaMemcpyDeviceToHost));
      CHECK_CUDA(cudaMemcpy(b.data(), y8, ny * 2, cudaMemcpyDeviceToHost));
      double ref_max = 0, diff_max = 0, ref_sq = 0, diff_sq = 0;
      for (int64_t i = 0; i < ny; ++i) {
        const double r = __half2float(a[i]), q = __half2float(b[i]);
        ref_max = std::max(ref_max, std::fabs(r));
        diff_max = std::max(diff_max, std::fabs(r - q));
        ref_sq += r * r;
        diff_sq += (r - q) * (r - q);
      }
      max_err = diff_max / std::max(ref_max, 1e-12);
      rms_err = std::sqrt(diff_sq / std::max(ref_sq, 1e-30));
    }
    const double flops = 2.0 * ny * 9 * s.c;
    std::printf("%-22s fp16 %7.3f ms (%3.0f TFLOP/s)  fastest fp8 %7.3f ms (%3.0f TFLOP/s)  fp8/fp16 %.2f  "
                "quantize x %.3f ms  err max %.4f rms %.4f\n",
                s.name, ms16, ms16 > 0 ? flops / ms16 / 1e9 : 0, ms8, ms8 > 0 ? flops / ms8 / 1e9 : 0,
                ms16 > 0 && ms8 > 0 ? ms8 / ms16 : 0, quantize_ms, max_err, rms_err);
    for (int vi = 0; vi < 4; ++vi)
      std::printf("    %-26s %7.3f ms  %2d plans\n", Name(static_cast<Variant>(vi)), ms[vi], plan_count[vi]);
    char row[512];
    std::snprintf(row, sizeof row,
                  "%s{\"shape\": \"%s\", \"fp16_ms\": %.4f, \"fp8_alpha_ms\": %.4f, \"fp8_scale_ms\": %.4f, "
                  "\"fp8_scale_bias_ms\": %.4f, \"quantize_ms\": %.4f, \"plans\": [%d, %d, %d, %d], "
                  "\"max_rel_err\": %.5f, \"rms_rel_err\": %.5f}",
                  si ? ", " : "", s.name, ms[0], ms[1], ms[2], ms[3], quantize_ms, plan_count[0], plan_count[1],
                  plan_count[2], plan_count[3], max_err, rms_err);
    json += row;
    for (void* p : std::vector<void*>{x, w, y16, y8, xq, wq, scale, bias, inv_w, inv_x, amax}) cudaFree(p);
  }
  json += "]}\n";
  WriteReport(argc > 1 ? argv[1] : nullptr, json);
  cudnnDestroy(handle);
  return 0;
}
