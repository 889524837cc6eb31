// The small-object pool (core/small_pool.hpp) and the pool's function wrapper.
#include "test_util.hpp"

#include <memory>

using namespace erlmr;

TEST_CASE("small pool: size classes are powers of two from 16 bytes") {
  CHECK(SmallPool::size_class(1) == 0);
  CHECK(SmallPool::size_class(16) == 0);
  CHECK(SmallPool::size_class(17) == 1);
  CHECK(SmallPool::size_class(32) == 1);
  CHECK(SmallPool::size_class(33) == 2);
  CHECK(SmallPool::size_class(SmallPool::kMaxBytes) == SmallPool::kClasses - 1);
  CHECK(SmallPool::class_bytes(SmallPool::kClasses - 1) == SmallPool::kMaxBytes);
}

TEST_CASE("small pool: a freed block is handed out again for any size of its class") {
  auto& pool = SmallPool::instance();
  void* p = pool.allocate(48);
  std::memset(p, 0xab, 64);  // the whole class block is usable
  pool.deallocate(p, 48);
  const auto hits = pool.hits();
  void* q = pool.allocate(40);  // same class (64 bytes): the block just freed
  CHECK(q == p);
  CHECK(pool.hits() == hits + 1);
  pool.deallocate(q, 40);
  // Blocks above the largest class go to operator new and back.
  void* big = pool.allocate(SmallPool::kMaxBytes + 1);
  std::memset(big, 0, SmallPool::kMaxBytes + 1);
  pool.deallocate(big, SmallPool::kMaxBytes + 1);
  // A vector growing through several classes.
  PoolVector<std::int64_t> v;
  for (int i = 0; i < 10000; ++i) v.push_back(i);
  CHECK(v[9999] == 9999);
}

TEST_CASE("pool function: calls, moves, and destroys its captures exactly once") {
  auto token = std::make_shared<int>(7);
  PoolFunction<int(int)> f = [token, pad = std::array<double, 20>{}](int x) { return x + *token + int(pad[0]); };
  CHECK(bool(f));
  CHECK(token.use_count() == 2);
  CHECK(f(1) == 8);
  PoolFunction<int(int)> g = std::move(f);
  CHECK(!f);  // NOLINT: moved-from is empty by contract
  CHECK(g(2) == 9);
  CHECK(token.use_count() == 2);
  g = nullptr;
  CHECK(!g);
  CHECK(token.use_count() == 1);
  PoolFunction<void(const Tensor<float>&)> empty;
  CHECK(!empty);
}

TEST_CASE("chunk function: parallel_for runs every chunk once without copying the lambda") {
  std::vector<int> hit(1000, 0);
  CpuDevice::parallel_for(1000, 7, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) ++hit[std::size_t(i)];
  });
  for (int h : hit) CHECK(h == 1);
}
