// Tests of the IR layer without running kernels: text round trips of every test kernel, the
// verifier's messages on malformed kernels, and what each optimization pass does.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

#include "compiler/test_kernels.h"
#include "flagstone/base/error.h"
#include "flagstone/compiler/ir.h"
#include "flagstone/compiler/kernel.h"
#include "flagstone/compiler/passes.h"

namespace flagstone::compiler {
namespace {

using ::testing::HasSubstr;

ir::Function build(const BuildFn& fn, const Config& config, const std::string& name = "k") {
  KernelBuilder b(name, config);
  fn(b);
  return b.finish();
}

int count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1))
    ++n;
  return n;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.message();
  }
  return "(no error)";
}

TEST(CompilerIr, EveryTestKernelRoundTripsThroughText) {
  for (const auto& tk : testing::all_test_kernels()) {
    for (const Config& config : tk.configs) {
      SCOPED_TRACE(tk.name + " {" + config.str() + "}");
      ir::Function fn = build(tk.build, config, tk.name);
      std::string text = ir::print(fn);
      ir::Function parsed = ir::parse(text);
      EXPECT_EQ(ir::print(parsed), text);
      passes::optimize(fn);
      std::string opt = ir::print(fn);
      EXPECT_EQ(ir::print(ir::parse(opt)), opt);
    }
  }
}

TEST(CompilerIr, TextFormKeepsSpecialConstantsAndParams) {
  const char* text =
      "kernel @k(%x: *f32, %x_size0: i32 = size(%x, 0), %x_stride0: i32 = stride(%x, 0), %a: f64) "
      "[BLOCK=4, num_warps=1] {\n"
      "  %0 = const -inf : f32[4]\n"
      "  %1 = const nan : f32\n"
      "  %2 = const 0.1 : f64\n"
      "  %3 = const -9223372036854775807 : i64\n"
      "  %4 = arange [0, 4] : i32[4]\n"
      "  %5 = splat %x : *f32[4]\n"
      "  %6 = addptr %5, %4 : *f32[4]\n"
      "  store %6, %0\n"
      "}\n";
  ir::Function fn = ir::parse(text);
  EXPECT_EQ(ir::print(fn), text);
  EXPECT_EQ(fn.params[1].role, ir::ParamRole::kSize);
  EXPECT_EQ(fn.params[2].role, ir::ParamRole::kStride);
}

TEST(CompilerIr, ParserNamesTheFaultyPlace) {
  EXPECT_THAT(error_of([] { ir::parse("kernel @k() {\n  %0 = add %1, %1 : f32\n}\n"); }),
              HasSubstr("line 2"));
  EXPECT_THAT(error_of([] { ir::parse("kernel @k() {\n  %0 = add %1, %1 : f32\n}\n"); }),
              HasSubstr("%1 is not defined"));
  EXPECT_THAT(error_of([] { ir::parse("kernel @k() {\n  %0 = frobnicate : f32\n}\n"); }),
              HasSubstr("unknown op 'frobnicate'"));
  EXPECT_THAT(error_of([] { ir::parse("kernel @k() {\n  %0 = const 1 : f33\n}\n"); }),
              HasSubstr("f33"));
  EXPECT_THAT(error_of([] { ir::parse("kernel @k() {\n"); }), HasSubstr("missing '}'"));
}

// Corrupted kernel text (random edits of every test kernel) must either parse into a kernel that
// round-trips or fail with a flagstone::Error: never crash, hang or throw anything else.
TEST(CompilerIr, CorruptedTextFailsCleanly) {
  std::mt19937 rng(std::random_device{}());
  const std::string alphabet = "%@[]{}(),:=*-+.0123456789 \nfiabxyz_";
  int parsed = 0, rejected = 0;
  for (const auto& tk : testing::all_test_kernels()) {
    std::string text = ir::print(build(tk.build, tk.configs[0], tk.name));
    for (int round = 0; round < 300; ++round) {
      std::string t = text;
      int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits; ++e) {
        size_t pos = rng() % t.size();
        switch (rng() % 4) {
          case 0:
            t.erase(pos, 1 + rng() % 8);
            break;
          case 1:
            t[pos] = alphabet[rng() % alphabet.size()];
            break;
          case 2:
            t.insert(pos, t.substr(rng() % t.size(), 1 + rng() % 12));
            break;
          default:
            t.insert(pos, std::to_string(static_cast<int64_t>(rng()) * 1000003));
            break;
        }
        if (t.empty()) t = "k";
      }
      try {
        ir::Function fn = ir::parse(t);
        std::string printed = ir::print(fn);
        ASSERT_EQ(ir::print(ir::parse(printed)), printed);
        ++parsed;
      } catch (const Error&) {
        ++rejected;
      }
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_EQ(parsed + rejected, 300 * static_cast<int>(testing::all_test_kernels().size()));
}

TEST(CompilerVerifier, RejectsMalformedKernelsWithTheFault) {
  // Shape mismatch of a binary op.
  EXPECT_THAT(error_of([] {
                ir::parse(
                    "kernel @k() {\n  %0 = const 1 : f32[4]\n  %1 = const 1 : f32[8]\n"
                    "  %2 = add %0, %1 : f32[4]\n}\n");
              }),
              HasSubstr("operand types differ (f32[4] vs f32[8])"));
  // Wrong dtype for an op.
  EXPECT_THAT(
      error_of([] { ir::parse("kernel @k() {\n  %0 = const 1 : i32\n  %1 = exp %0 : i32\n}\n"); }),
      HasSubstr("needs a float operand, got i32"));
  // Store through a non-pointer.
  EXPECT_THAT(error_of([] {
                KernelBuilder k("bad");
                Value x = k.scalar_arg("x", DType::kF32);
                k.store(x, x);
              }),
              HasSubstr("store through a non-pointer f32"));
  // Storing a value of another dtype.
  EXPECT_THAT(error_of([] {
                KernelBuilder k("bad");
                Value p = k.pointer_arg("p", DType::kF16);
                k.store(p, k.constant(1.0f, DType::kF32));
              }),
              HasSubstr("store of a f32 value through a *f16 pointer"));
  // Dot with mismatched inner dims.
  EXPECT_THAT(error_of([] {
                KernelBuilder k("bad");
                k.dot(k.zeros({4, 8}, DType::kF32), k.zeros({4, 8}, DType::kF32));
              }),
              HasSubstr("inner dimensions differ"));
  // Shapes that do not broadcast.
  EXPECT_THAT(error_of([] {
                KernelBuilder k("bad");
                Value r = k.arange(0, 4) + k.arange(0, 8);
                (void)r;
              }),
              HasSubstr("do not broadcast"));
  // A loop whose body yields another type than it carries.
  EXPECT_THAT(error_of([] {
                KernelBuilder k("bad");
                k.for_range(0, 4, 1, {k.zeros({4}, DType::kF32)}, [&](Value, std::vector<Value> c) {
                  return std::vector<Value>{c[0].to(DType::kF16)};
                });
              }),
              HasSubstr("yielded value 0 has type f16[4] but the loop carries f32[4]"));
  // A mask that is not bool.
  EXPECT_THAT(error_of([] {
                KernelBuilder k("bad");
                Value p = k.pointer_arg("p", DType::kF32);
                k.load(p + k.arange(0, 4), k.arange(0, 4));
              }),
              HasSubstr("mask must be bool, got i32[4]"));
  // Atomics on an unsupported dtype.
  EXPECT_THAT(error_of([] {
                KernelBuilder k("bad");
                Value p = k.pointer_arg("p", DType::kF64);
                k.atomic_add(p, k.constant(1.0, DType::kF64));
              }),
              HasSubstr("atomic_add supports f32 and i32"));
  // Reduction axis out of range, named in the message.
  EXPECT_THAT(error_of([] {
                KernelBuilder k("bad");
                k.sum(k.zeros({4, 4}, DType::kF32), 2);
              }),
              HasSubstr("axis 2 out of range for f32[4,4]"));
}

TEST(CompilerVerifier, RejectsUseBeforeDefinition) {
  ir::Function fn;
  fn.name = "k";
  ir::ValueId a = fn.new_value(ir::scalar_type(DType::kF32));
  ir::ValueId b = fn.new_value(ir::scalar_type(DType::kF32));
  ir::Op add;
  add.kind = ir::OpKind::kAdd;
  add.operands = {a, a};
  add.results = {b};
  ir::Op c;
  c.kind = ir::OpKind::kConstant;
  c.results = {a};
  fn.body.ops.push_back(std::move(add));
  fn.body.ops.push_back(std::move(c));
  EXPECT_THAT(error_of([&] { ir::verify(fn); }),
              HasSubstr("uses %0, which is not defined before it"));
}

TEST(CompilerPasses, FoldsConstantsAndRemovesDeadCode) {
  ir::Function fn = build(
      [](KernelBuilder& k) {
        Value p = k.pointer_arg("p", DType::kI32);
        Value unused = k.load(p);  // dead
        (void)unused;
        k.store(p, k.constant(2, DType::kI32) * 3 + 1);
      },
      {});
  EXPECT_GT(passes::fold_constants(fn), 0);
  passes::eliminate_dead_code(fn);
  std::string text = ir::print(fn);
  EXPECT_THAT(text, HasSubstr("const 7 : i32"));
  EXPECT_EQ(count(text, "load"), 0) << text;
  EXPECT_EQ(count(text, "mul"), 0) << text;
}

TEST(CompilerPasses, MergesCommonSubexpressions) {
  ir::Function fn = build(
      [](KernelBuilder& k) {
        Value p = k.pointer_arg("p", DType::kI32);
        Value offs = k.program_id(0) * 64 + k.arange(0, 64);
        Value again = k.program_id(0) * 64 + k.arange(0, 64);
        k.store(p + offs, offs * 2);
        k.store(p + again, again * 2);
      },
      {});
  passes::optimize(fn);
  std::string text = ir::print(fn);
  EXPECT_EQ(count(text, "program_id"), 1) << text;
  EXPECT_EQ(count(text, " = mul"), 2) << text;  // pid*64 and offs*2, once each
  EXPECT_EQ(count(text, "store"), 2) << text;
}

BuildFn masked_copy(int64_t k_total) {
  return [k_total](KernelBuilder& k) {
    int64_t bk = k.meta("BK");
    Value src = k.pointer_arg("src", DType::kF32);
    Value dst = k.pointer_arg("dst", DType::kF32);
    k.for_range(0, k_total, bk, {}, [&](Value k0, std::vector<Value>) {
      Value offs = k0 + k.arange(0, bk);
      k.store(dst + offs, k.load(src + offs, offs < k_total, 0.0f), offs < k_total);
      return std::vector<Value>{};
    });
  };
}

TEST(CompilerPasses, DropsMasksProvedAllTrueByDivisibility) {
  ir::Function even = build(masked_copy(128), Config{{"BK", 32}});
  passes::optimize(even);
  std::string text = ir::print(even);
  EXPECT_EQ(count(text, " lt "), 0) << text;
  EXPECT_THAT(text, HasSubstr("store %"));
  // 100 is not a multiple of 32: the last block needs its mask.
  ir::Function odd = build(masked_copy(100), Config{{"BK", 32}});
  passes::optimize(odd);
  text = ir::print(odd);
  EXPECT_EQ(count(text, " lt "), 1) << text;
}

TEST(CompilerPasses, FoldsAllFalseMasks) {
  ir::Function fn = build(
      [](KernelBuilder& k) {
        Value p = k.pointer_arg("p", DType::kF32);
        Value offs = k.arange(0, 16);
        k.store(p + offs, k.load(p + offs, offs < 0, 5.0f), offs >= 16);  // never stores
      },
      {});
  passes::optimize(fn);
  std::string text = ir::print(fn);
  EXPECT_EQ(count(text, "store"), 0) << text;
  EXPECT_EQ(count(text, "load"), 0) << text;
}

TEST(CompilerPasses, ChoosesVectorWidthFromContiguity) {
  ir::Function fn = build(
      [](KernelBuilder& k) {
        Value p = k.pointer_arg("p", DType::kF32);
        Value q = k.pointer_arg("q", DType::kF32);
        Value offs = k.program_id(0) * 128 + k.arange(0, 128);
        Value v = k.load(p + offs);
        k.store(q + offs * 2, v);  // strided: width 1
      },
      {});
  passes::optimize(fn);
  std::string text = ir::print(fn);
  EXPECT_THAT(text, HasSubstr("load %"));
  EXPECT_THAT(text, HasSubstr("[128] : f32[128]")) << text;
  EXPECT_THAT(text, HasSubstr("[1]\n")) << text;
}

// The vector width is a proof (the CUDA and OpenCL code no longer re-check that a group's
// addresses are consecutive), so casts that may wrap and rows shorter than a run must cut it.
TEST(CompilerPasses, VectorWidthStopsAtWrappingCastsAndRowEnds) {
  auto width_of_store = [](const BuildFn& body) {
    ir::Function fn = build(body, {});
    passes::optimize(fn);
    int64_t width = -1;
    ir::walk(fn.body, [&](const ir::Op& op) {
      if (op.kind == ir::OpKind::kStore) width = op.attrs.at(0);
    });
    return width;
  };
  // arange(0, 256) as i8 wraps from 127 to -128: no run.
  EXPECT_EQ(width_of_store([](KernelBuilder& k) {
              Value p = k.pointer_arg("p", DType::kF32);
              k.store(p + k.arange(0, 256).to(DType::kI8), k.zeros({256}, DType::kF32));
            }),
            1);
  // Through i64 the run stays whole.
  EXPECT_EQ(width_of_store([](KernelBuilder& k) {
              Value p = k.pointer_arg("p", DType::kF32);
              k.store(p + k.arange(0, 256).to(DType::kI64), k.zeros({256}, DType::kF32));
            }),
            256);
  // Through f32 (exact here, but not in general) nothing is proven.
  EXPECT_EQ(width_of_store([](KernelBuilder& k) {
              Value p = k.pointer_arg("p", DType::kF32);
              k.store(p + k.arange(0, 256).to(DType::kF32).to(DType::kI32),
                      k.zeros({256}, DType::kF32));
            }),
            1);
  // Rows of 12 out of a [4, 12] tile with row stride 16: runs of 12 end at each row; the
  // width is the row length, and a row of 12 does not split into groups of 8.
  EXPECT_EQ(width_of_store([](KernelBuilder& k) {
              Value p = k.pointer_arg("p", DType::kF32);
              Value offs = k.arange(0, 4).col() * 16 + k.arange(0, 12).row();
              k.store(p + offs, k.zeros({4, 12}, DType::kF32));
            }),
            12);
}

TEST(CompilerBuilder, PromotesLiteralsAndBroadcasts) {
  KernelBuilder k("promote");
  Value h = k.zeros({4}, DType::kF16);
  EXPECT_EQ((h * 2).dtype(), DType::kF16);
  Value i = k.arange(0, 4);
  EXPECT_EQ((i * 0.5).dtype(), DType::kF32);
  EXPECT_EQ((i.col() + i.row()).shape(), (std::vector<int64_t>{4, 4}));
  EXPECT_EQ((i < 3).dtype(), DType::kBool);
  EXPECT_EQ((i + k.constant(1, DType::kI64)).dtype(), DType::kI64);
  EXPECT_EQ(k.argmax(i.col() + i.row(), 1, true).shape(), (std::vector<int64_t>{4, 1}));
  EXPECT_THAT(error_of([] {
                KernelBuilder b("m");
                b.meta("BLOCK");
              }),
              HasSubstr("meta-parameter 'BLOCK' is not set"));
}

}  // namespace
}  // namespace flagstone::compiler
