// Optimisers (SGD, Adam, AdamW, with parameter groups) and learning-rate schedules against
// torch.optim's recorded values (tests/reference/make_module_reference.py), every option, 12 steps;
// optimiser state round trips; argument errors.
#include <catch2/catch.hpp>

#include <memory>

#include "module_reference.hpp"
#include "reference_data.hpp"

using namespace headnet;
using namespace headnet_test;

namespace {

SGDOptions sgd_options(const nlohmann::json& o) {
  return SGDOptions(o["lr"].get<double>())
      .momentum(o["momentum"].get<double>())
      .dampening(o["dampening"].get<double>())
      .weight_decay(o["weight_decay"].get<double>())
      .nesterov(o["nesterov"].get<bool>());
}
template <typename Options>
Options adam_options(const nlohmann::json& o) {
  Options a(o["lr"].get<double>());
  a.betas(o["betas"][0].get<double>(), o["betas"][1].get<double>())
      .eps(o["eps"].get<double>())
      .weight_decay(o["weight_decay"].get<double>())
      .amsgrad(o["amsgrad"].get<bool>());
  return a;
}

// The optimiser of a recorded case over `params` (one group per recorded group).
std::unique_ptr<Optimizer<double>> make_optimizer(const nlohmann::json& c, std::vector<Parameter<double>> params) {
  const std::string type = c["type"];
  const auto& groups = c["groups"];
  auto split = [&](std::size_t g) {
    if (groups.size() == 1) return params;
    return std::vector<Parameter<double>>{params[g]};
  };
  if (type == "SGD") {
    std::vector<SGD<double>::Group> gs;
    for (std::size_t g = 0; g < groups.size(); ++g) gs.push_back({split(g), sgd_options(groups[g])});
    return std::make_unique<SGD<double>>(gs);
  }
  if (type == "Adam") {
    std::vector<Adam<double>::Group> gs;
    for (std::size_t g = 0; g < groups.size(); ++g) gs.push_back({split(g), adam_options<AdamOptions>(groups[g])});
    return std::make_unique<Adam<double>>(gs);
  }
  std::vector<AdamW<double>::Group> gs;
  for (std::size_t g = 0; g < groups.size(); ++g) gs.push_back({split(g), adam_options<AdamWOptions>(groups[g])});
  return std::make_unique<AdamW<double>>(gs);
}

double relative(double a, double b) { return std::abs(a - b) / std::max(1e-12, std::abs(b)); }

}  // namespace

TEST_CASE("SGD, Adam and AdamW follow torch.optim for every option and parameter groups", "[optim][pytorch]") {
  for (const auto& c : module_reference()["optimizers"]) {
    INFO(c["type"].get<std::string>() << " " << c["groups"].dump());
    Tensor<double> p1 = tensor_from(c["initial"][0], {7}), p2 = tensor_from(c["initial"][1], {3, 2});
    Tensor<double> g1({7}), g2({3, 2});
    auto opt = make_optimizer(c, {{"p1", p1, g1}, {"p2", p2, g2}});
    CHECK(opt->type() == c["type"].get<std::string>());
    for (std::size_t step = 0; step < c["grads"].size(); ++step) {
      INFO("step " << step + 1);
      copy_into(g1, c["grads"][step][0]);
      copy_into(g2, c["grads"][step][1]);
      opt->step();
      double worst = 0;
      for (int k = 0; k < 7; ++k) worst = std::max(worst, relative(p1.data()[k], c["after"][step][0][std::size_t(k)]));
      for (int k = 0; k < 6; ++k) worst = std::max(worst, relative(p2.data()[k], c["after"][step][1][std::size_t(k)]));
      CHECK(worst < 1e-6);
    }
    CHECK(opt->steps() == std::int64_t(c["grads"].size()));
  }
}

TEST_CASE("Learning-rate schedules follow torch.optim.lr_scheduler", "[optim][schedule][pytorch]") {
  for (const auto& c : module_reference()["schedules"]) {
    const std::string name = c["name"];
    INFO(name << " " << c.dump().substr(0, 200));
    Tensor<double> p1({1}), p2({1}), g1({1}), g2({1});
    const double lr1 = c["base_lrs"][0], lr2 = c["base_lrs"][1];
    std::unique_ptr<Optimizer<double>> opt;
    if (c["optimizer"] == "SGD") {
      opt = std::make_unique<SGD<double>>(std::vector<SGD<double>::Group>{{{{"p1", p1, g1}}, SGDOptions(lr1).momentum(0.9)},
                                                                          {{{"p2", p2, g2}}, SGDOptions(lr2).momentum(0.9)}});
    } else {
      opt = std::make_unique<Adam<double>>(std::vector<Adam<double>::Group>{{{{"p1", p1, g1}}, AdamOptions(lr1)},
                                                                            {{{"p2", p2, g2}}, AdamOptions(lr2)}});
    }
    std::unique_ptr<LRScheduler<double>> s;
    if (name == "LambdaLR") s = std::make_unique<LambdaLR<double>>(*opt, [](std::int64_t t) { return std::pow(0.95, double(t)); });
    if (name == "StepLR") s = std::make_unique<StepLR<double>>(*opt, c["step_size"], c["gamma"]);
    if (name == "MultiStepLR")
      s = std::make_unique<MultiStepLR<double>>(*opt, c["milestones"].get<std::vector<std::int64_t>>(), c["gamma"]);
    if (name == "CosineAnnealingLR") s = std::make_unique<CosineAnnealingLR<double>>(*opt, c["T_max"], c["eta_min"]);
    if (name == "OneCycleLR") {
      OneCycleOptions o;
      o.cosine = c["anneal"] == "cos";
      o.three_phase = c["three_phase"];
      if (c.contains("pct_start")) o.pct_start = c["pct_start"];
      if (c.contains("div_factor")) o.div_factor = c["div_factor"];
      if (c.contains("final_div_factor")) o.final_div_factor = c["final_div_factor"];
      if (c.contains("base_momentum")) o.base_momentum = c["base_momentum"];
      if (c.contains("max_momentum")) o.max_momentum = c["max_momentum"];
      s = std::make_unique<OneCycleLR<double>>(*opt, c["max_lr"], c["total_steps"], o);
    }
    if (name == "PiecewiseLinearLR")
      s = std::make_unique<PiecewiseLinearLR<double>>(*opt, c["knots"].get<std::vector<double>>(),
                                                      c["factors"].get<std::vector<double>>());
    REQUIRE(s);
    for (std::size_t t = 0; t < c["lr"].size(); ++t) {
      INFO("t = " << t);
      for (std::size_t g = 0; g < 2; ++g) {
        const double want = c["lr"][t][g];
        CHECK(std::abs(opt->lr(g) - want) <= 1e-12 + 1e-9 * std::abs(want));
        if (c.contains("momentum") && name == "OneCycleLR") CHECK(std::abs(opt->momentum(g) - c["momentum"][t][g].get<double>()) < 1e-12);
      }
      opt->step();
      if (t + 1 < c["lr"].size()) s->step();
    }
    // A schedule is a function of its position: setting it back reproduces any step.
    s->set_last_epoch(3);
    CHECK(std::abs(opt->lr(0) - c["lr"][3][0].get<double>()) <= 1e-12 + 1e-9 * c["lr"][3][0].get<double>());
  }
}

TEST_CASE("An optimiser's state dict continues a run exactly", "[optim][state_dict]") {
  for (int kind = 0; kind < 3; ++kind) {
    INFO("kind " << kind);
    auto make = [&](Tensor<double>& v, Tensor<double>& g) -> std::unique_ptr<Optimizer<double>> {
      std::vector<Parameter<double>> ps{{"w", v, g}};
      if (kind == 0) return std::make_unique<SGD<double>>(ps, SGDOptions(0.1).momentum(0.9).nesterov(true));
      if (kind == 1) return std::make_unique<Adam<double>>(ps, AdamOptions(0.01).amsgrad(true));
      return std::make_unique<AdamW<double>>(ps, AdamWOptions(0.01));
    };
    Tensor<double> a({5}, 1.0), ga({5}), b({5}), gb({5});
    auto opt_a = make(a, ga);
    Generator gen(3);
    for (int step = 0; step < 4; ++step) {
      for (double& v : ga) v = gen.uniform(-1, 1);
      opt_a->step();
    }
    std::copy(a.begin(), a.end(), b.begin());
    auto opt_b = make(b, gb);
    opt_b->load_state_dict(opt_a->state_dict());
    CHECK(opt_b->steps() == 4);
    for (int step = 0; step < 4; ++step) {
      for (double& v : ga) v = gen.uniform(-1, 1);
      std::copy(ga.begin(), ga.end(), gb.begin());
      opt_a->step();
      opt_b->step();
    }
    CHECK(std::equal(a.begin(), a.end(), b.begin()));
    // A state of another shape is refused before anything changes.
    Tensor<double> c({6}), gc({6});
    SGD<double> other({{"w", c, gc}}, SGDOptions(0.1).momentum(0.9));
    if (kind == 0) CHECK_THROWS_WITH(opt_a->load_state_dict(other.state_dict()), Catch::Contains("has shape (6), expected (5)"));
  }
}

TEST_CASE("Optimisers and schedules refuse impossible options", "[optim][errors]") {
  Tensor<double> v({2}), g({2});
  CHECK_THROWS_WITH(Adam<double>({{"p", v, g}}, AdamOptions(0.1).betas(1.0, 0.9)), "Adam: beta1 must be in [0, 1), got 1.000000");
  CHECK_THROWS_WITH(AdamW<double>({{"p", v, g}}, AdamWOptions(-1)), "AdamW: learning rate must be >= 0, got -1.000000");
  CHECK_THROWS_WITH(SGD<double>({{"p", v, g}}, SGDOptions(0.1).momentum(-1)), "SGD: momentum must be >= 0, got -1.000000");
  SGD<double> sgd({{"p", v, g}}, SGDOptions(0.1));
  CHECK_THROWS_WITH(StepLR<double>(sgd, 0), "StepLR: step_size must be at least 1, got 0");
  CHECK_THROWS_WITH(PiecewiseLinearLR<double>(sgd, {0, 1}, {1}),
                    "PiecewiseLinearLR: needs as many factors as steps, at least one (got 2 steps and 1 factors)");
  // One-cycle cycles momentum, which SGD without momentum does not have.
  CHECK_THROWS_WITH(OneCycleLR<double>(sgd, 0.1, 10),
                    "SGD: cannot change momentum between zero and non-zero after construction (group 0)");
  SGD<double> with_momentum({{"p", v, g}}, SGDOptions(0.1).momentum(0.9));
  OneCycleLR<double> cycle(with_momentum, 0.1, 3);
  cycle.step();
  cycle.step();
  cycle.step();  // t = total_steps is allowed, as in PyTorch
  CHECK_THROWS_WITH(cycle.step(), "OneCycleLR: tried to step 5 times; the specified number of total steps is 3");
  AdamW<double> adamw({{"p", v, g}});
  CHECK(adamw.options().weight_decay() == 0.01);  // PyTorch's AdamW default
  CHECK(Adam<double>({{"p", v, g}}).options().weight_decay() == 0.0);
}
