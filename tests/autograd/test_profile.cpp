// The op profiler (erlmr/autograd/profile.hpp). test_autograd is compiled with
// ERLMR_OP_PROFILE, so the tape tests beside this file also run with the hooks in place.
#include "test_util.hpp"

TEST_CASE("op profiler: one forward entry per recorded op, one backward entry per rule run, reset clears") {
  using namespace erlmr;
  REQUIRE(profile::kEnabled);
  profile::reset();
  CHECK(profile::table().empty());
  auto x = test::rnd<double>(Shape{3, 4}, 1), w = test::rnd<double>(Shape{3, 4}, 2);
  auto y = mul(x, w);
  auto z = mul(y, w);  // a second mul: two forward calls
  backward(sum(z));
  const auto& t = profile::table();
  REQUIRE(t.count("mul") == 1);
  CHECK(t.at("mul").forward_calls == 2);
  CHECK(t.at("mul").backward_calls == 2);
  CHECK(t.at("mul").forward_ms >= 0);
  CHECK(t.at("mul").backward_ms >= 0);
  std::int64_t fwd = 0, bwd = 0;
  for (const auto& [op, e] : t) {
    fwd += e.forward_calls;
    bwd += e.backward_calls;
  }
  CHECK(fwd == 3);  // mul, mul, the sum
  CHECK(bwd == 3);
  {
    NoGradGuard ng;  // ops are recorded (and counted) without grad too; no rules run
    auto v = mul(x, w);
    CHECK(profile::table().at("mul").forward_calls == 3);
  }
  profile::reset();
  CHECK(profile::table().empty());
}
