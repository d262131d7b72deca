// headnet/train/trainer.hpp: Trainer, the training loop of a classifier, with exact resume.
//
// Contract
// - fit() trains `model` with `optimizer` on batches from `loader` for options.epochs epochs,
//   minimising cross-entropy: per batch zero_grad, forward, loss, backward, step, then the
//   learning-rate schedule when it is stepped per batch (per epoch: at each epoch's end). It
//   continues from where the trainer is: the start, or the point load_checkpoint() restored.
// - A checkpoint (options.checkpoint_path, every options.checkpoint_every steps and at each epoch's
//   end, written atomically) holds everything a run needs to continue bit-exactly with the same
//   thread count: the model's state dict (parameters and buffers), the optimiser's buffers, step
//   count and per-group learning rates and momenta, the schedule's position, the loader's shuffle
//   generator and position, every random stream of the model's layers, and the trainer's own
//   counters (loss windows, loss curve, images seen, time), and any tensors given to
//   checkpoint_extra() (a lookahead's average). It is a safetensors file ("model.*", "optimizer.*",
//   "extra.*" tensors; the rest as JSON in its metadata, beside the caller's checkpoint_metadata).
// - load_checkpoint() validates the whole file against this trainer's model and optimiser before it
//   changes anything; a corrupt or mismatched file is a DataError naming it, and the file is left
//   as it was.
// - The NaN guard: a non-finite loss or gradient stops training before the update with a
//   NumericError naming the epoch, the step, and the first non-finite parameter, the input, or the
//   first layer (by its dotted name) whose output is not finite, and the last good checkpoint.
// - Callbacks: on_step after every step, on_log every options.log_every steps with the mean loss
//   since the last call (windows restart with each epoch, as the PyTorch tutorial's prints do),
//   on_epoch_end. A progress bar (train/progress.hpp) shows the run on a terminal.
// - No allocation per step in steady state beyond what the model and optimiser do (none).
#pragma once

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "headnet/core/error.hpp"
#include "headnet/data/loader.hpp"
#include "headnet/io/safetensors.hpp"
#include "headnet/layers/layer.hpp"
#include "headnet/layers/residual.hpp"
#include "headnet/layers/sequential.hpp"
#include "headnet/loss/cross_entropy.hpp"
#include "headnet/optim/lr_scheduler.hpp"
#include "headnet/optim/optimizer.hpp"
#include "headnet/train/distributed.hpp"
#include "headnet/train/evaluate.hpp"
#include "headnet/train/progress.hpp"

namespace headnet {
namespace train {

/// Whether a schedule steps after every batch or after every epoch.
enum class SchedulePer { step, epoch };

/// How a Trainer runs.
struct TrainerOptions {
  int epochs = 1;  ///< epochs to train
  /// Stop after this many steps in all (0: after `epochs`): a fractional last epoch, as the fast
  /// CIFAR-10 recipe's 9.9.
  std::int64_t max_steps = 0;
  std::string checkpoint_path;             ///< where checkpoints go; empty: no checkpoints
  std::int64_t checkpoint_every = 0;       ///< steps between checkpoints; 0: only at each epoch's end
  std::int64_t log_every = 0;              ///< steps between on_log calls; 0: none
  int curve_points_per_epoch = 50;         ///< points of the loss curve per epoch
  bool progress = true;                    ///< the progress bar (train/progress.hpp)
  std::string progress_prefix;             ///< in front of the progress line ("run 3/20 ")
  SchedulePer schedule_per = SchedulePer::step;  ///< whether the schedule steps per batch or per epoch
  std::int64_t debug_kill_at_step = 0;     ///< testing only: SIGKILL after this many steps
};

/// Where a run is, and what it has recorded so far.
struct TrainerState {
  int epoch = 0;            ///< the epoch in progress (0-based)
  std::int64_t step = 0;    ///< steps of it already done
  double log_loss = 0;      ///< loss sum since the last on_log
  double curve_loss = 0;    ///< loss sum since the last loss-curve point
  std::int64_t curve_count = 0;  ///< loss-curve samples in curve_loss
  std::int64_t images_seen = 0;  ///< images trained on
  double seconds = 0;       ///< training time, over every process that worked on the run
  std::vector<std::pair<double, double>> loss_curve;  ///< (epoch as a fraction, mean loss)
  std::vector<double> epoch_accuracy;                 ///< validation accuracy after each epoch, if validated
};

/// What on_step receives after each step.
struct StepInfo {
  int epoch;  ///< the epoch (0-based)
  std::int64_t step;  ///< the step in the epoch (0-based)
  std::int64_t steps_per_epoch;  ///< steps in an epoch
  std::int64_t global_step;  ///< steps since the run began
  float loss;  ///< the batch's loss
};

/// The training loop: batches, loss, backward, optimiser and schedule steps, validation, checkpoints, NaN guard.
class Trainer {
 public:
  /// A trainer of `model` with `optimizer` on batches from `loader`.
  Trainer(Layer<float>& model, Optimizer<float>& optimizer, data::Loader& loader, TrainerOptions options = TrainerOptions())
      : model_(model), optimizer_(optimizer), loader_(loader), options_(std::move(options)) {
    if (options_.epochs < 0) throw Error("Trainer: epochs must be >= 0, got " + std::to_string(options_.epochs));
    if (options_.checkpoint_every < 0 || options_.log_every < 0) throw Error("Trainer: step intervals must be >= 0");
  }

  /// called after every step
  std::function<void(const StepInfo&)> on_step;
  /// called every options().log_every steps with the mean loss
  std::function<void(int epoch, std::int64_t step, double mean_loss)> on_log;
  /// called after every epoch (and its validation)
  std::function<void(int epoch, const TrainerState&)> on_epoch_end;
  std::map<std::string, std::string> checkpoint_metadata;  ///< stored in every checkpoint (a recipe, say)

  /// A schedule stepped per batch or per epoch (options.schedule_per); its position is checkpointed.
  void set_scheduler(LRScheduler<float>* scheduler) { scheduler_ = scheduler; }
  /// Data-parallel training (dist/data_parallel.hpp): the loader must give this rank's shard. The
  /// losses logged are the whole batch's (Distributed::combine_loss); only rank 0 writes
  /// checkpoints, and they record the world size, which a resume must match.
  void set_distributed(Distributed* distributed) { distributed_ = distributed; }
  /// A loader evaluated after every epoch; its accuracy is in state().epoch_accuracy.
  void set_validation(data::Loader* loader) { validation_ = loader; }
  /// More tensors that a run's checkpoints must hold ("extra.<name>.<key>"), e.g. a lookahead's or an
  /// EMA's average (ModelAverage::average()); handles, so the checkpoint sees their current values
  /// and load_checkpoint() copies into them.
  void checkpoint_extra(const std::string& name, const StateDict<float>& tensors) { extras_.push_back({name, tensors}); }

  /// The options (may be changed before fit()).
  TrainerOptions& options() { return options_; }
  /// Where the run is.
  const TrainerState& state() const { return state_; }
  /// The loss.
  CrossEntropyLoss<float>& criterion() { return criterion_; }
  /// Training speed so far.
  double images_per_second() const { return state_.seconds > 0 ? double(state_.images_seen) / state_.seconds : 0; }

  /// Trains until options().epochs or max_steps, resuming where load_checkpoint() left off.
  void fit() {
    model_.train();
    model_.set_needs_input_grad(false);
    const std::vector<Parameter<float>> params = optimizer_.parameters();
    const std::int64_t steps = loader_.batches_per_epoch();
    const std::int64_t curve_every = std::max<std::int64_t>(1, steps / std::max(1, options_.curve_points_per_epoch));
    const auto start = std::chrono::steady_clock::now();
    const std::int64_t images_before = state_.images_seen;
    auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
    const bool main_rank = !distributed_ || distributed_->rank() == 0;
    const std::int64_t world = distributed_ ? distributed_->world_size() : 1;
    ProgressBar progress(options_.progress && main_rank, options_.progress_prefix);
    Tensor<float> images;
    std::vector<std::int32_t> labels;
    TrainerState& s = state_;
    auto stop = [&](const std::string& what) {
      progress.clear();
      const std::string& path = options_.checkpoint_path;
      throw NumericError("training diverged at epoch " + std::to_string(s.epoch + 1) + ", step " +
                         std::to_string(s.step + 1) + ": " + what +
                         (path.empty() ? std::string()
                          : std::filesystem::exists(path) ? "; the last good checkpoint is " + path
                                                           : "; no checkpoint had been written yet") +
                         " (try a smaller learning rate)");
    };
    for (; s.epoch < options_.epochs; ++s.epoch) {
      if (s.step == 0) s.log_loss = 0;
      double epoch_loss = 0;
      std::int64_t epoch_steps = 0;
      while ((options_.max_steps <= 0 || std::int64_t(s.epoch) * steps + s.step < options_.max_steps) &&
             loader_.next(images, labels)) {
        optimizer_.zero_grad();
        if (distributed_) distributed_->before_forward();
        float loss = criterion_.forward(model_.forward(images), labels);
        if (distributed_) {
          // Every rank must take the same decision: go on with the backward pass (its collectives
          // wait for all ranks), then judge the loss averaged over them.
          distributed_->before_backward();
          model_.backward(criterion_.backward());
          distributed_->after_backward();
          loss = float(distributed_->combine_loss(loss));
        }
        if (!std::isfinite(loss)) stop(std::string("the loss is ") + (std::isnan(loss) ? "NaN" : "infinite") + "; " + diagnose_nonfinite(images));
        if (!distributed_) model_.backward(criterion_.backward());
        for (const auto& p : params)
          if (!all_finite(p.grad)) stop("the gradient of " + p.name + " holds a NaN or infinity");
        optimizer_.step();
        if (scheduler_ && options_.schedule_per == SchedulePer::step) scheduler_->step();
        ++s.step;
        s.images_seen += std::int64_t(labels.size()) * world;
        s.log_loss += loss;
        s.curve_loss += loss;
        ++s.curve_count;
        epoch_loss += loss;
        ++epoch_steps;
        const std::int64_t global_step = std::int64_t(s.epoch) * steps + s.step;
        if (on_step) on_step({s.epoch, s.step, steps, global_step, loss});
        if (options_.log_every > 0 && s.step % options_.log_every == 0) {
          progress.clear();
          if (on_log) on_log(s.epoch, s.step, s.log_loss / double(options_.log_every));
          s.log_loss = 0;
        }
        if (s.step % curve_every == 0 || s.step == steps) {
          s.loss_curve.push_back({s.epoch + double(s.step) / double(steps), s.curve_loss / double(s.curve_count)});
          s.curve_loss = 0;
          s.curve_count = 0;
        }
        if (main_rank && !options_.checkpoint_path.empty() && s.step < steps && options_.checkpoint_every > 0 &&
            global_step % options_.checkpoint_every == 0) {
          save_checkpoint(options_.checkpoint_path, elapsed());
        }
        if (options_.debug_kill_at_step > 0 && global_step == options_.debug_kill_at_step) std::raise(SIGKILL);
        const double seconds = elapsed();
        const double rate = seconds > 0 ? double(s.images_seen - images_before) / seconds : 0;
        const double remaining = double(options_.epochs) * double(loader_.size()) - double(s.images_seen);
        progress.update(s.epoch + 1, options_.epochs, s.step, steps,
                        s.curve_count ? s.curve_loss / double(s.curve_count) : loss, rate, rate > 0 ? remaining / rate : 0);
      }
      if (s.step < steps) break;  // stopped by max_steps within this epoch
      // The epoch's end: the loader moves to the next epoch now, so that a checkpoint taken here
      // resumes at its start.
      loader_.start_epoch();
      if (scheduler_ && options_.schedule_per == SchedulePer::epoch) scheduler_->step();
      double accuracy = -1;
      if (validation_) {
        progress.clear();
        accuracy = evaluate(model_, *validation_).accuracy;
        s.epoch_accuracy.push_back(accuracy);
      }
      const double seconds = elapsed();
      progress.clear();
      progress.epoch_done(s.epoch + 1, options_.epochs, epoch_steps ? epoch_loss / double(epoch_steps) : 0,
                          seconds > 0 ? double(s.images_seen - images_before) / seconds : 0, accuracy);
      if (on_epoch_end) on_epoch_end(s.epoch, s);
      s.step = 0;
      s.log_loss = 0;
      if (main_rank && !options_.checkpoint_path.empty()) {
        ++s.epoch;
        save_checkpoint(options_.checkpoint_path, elapsed());
        --s.epoch;
      }
    }
    progress.clear();
    s.seconds += elapsed();
  }

  /// Writes a checkpoint of the run as it is now (see the top of the file).
  void save_checkpoint(const std::string& path, double seconds_this_process = 0) {
    StateDict<float> tensors;
    tensors.append(model_.state_dict(), "model.");
    const OptimizerState<float> opt = optimizer_.state_dict();
    tensors.append(opt.buffers, "optimizer.");
    for (const auto& extra : extras_) tensors.append(extra.second, "extra." + extra.first + ".");
    const TrainerState& s = state_;
    nlohmann::json j;
    j["epoch"] = s.epoch;
    j["step"] = s.step;
    j["log_loss"] = exact(s.log_loss);
    j["curve_loss"] = exact(s.curve_loss);
    j["curve_count"] = s.curve_count;
    j["images_seen"] = s.images_seen;
    j["seconds"] = exact(s.seconds + seconds_this_process);
    j["loss_curve"] = nlohmann::json::array();
    for (const auto& p : s.loss_curve) j["loss_curve"].push_back({exact(p.first), exact(p.second)});
    j["epoch_accuracy"] = nlohmann::json::array();
    for (double a : s.epoch_accuracy) j["epoch_accuracy"].push_back(exact(a));
    const data::LoaderState ls = loader_.state();
    j["loader"] = {{"generator", words(ls.epoch_generator)}, {"position", ls.position}, {"epoch", ls.epoch}};
    j["optimizer"] = {{"type", optimizer_.type()}, {"steps", opt.steps}, {"lr", nlohmann::json::array()},
                      {"momentum", nlohmann::json::array()}};
    for (std::size_t g = 0; g < opt.lr.size(); ++g) {
      j["optimizer"]["lr"].push_back(exact(opt.lr[g]));
      j["optimizer"]["momentum"].push_back(exact(opt.momentum[g]));
    }
    if (scheduler_) j["scheduler"] = {{"type", scheduler_->type()}, {"last_epoch", scheduler_->last_epoch()}};
    j["generators"] = nlohmann::json::object();
    for (const auto& g : model_.generators()) j["generators"][g.first] = words(g.second->state());
    std::map<std::string, std::string> metadata = checkpoint_metadata;
    metadata["headnet_checkpoint"] = "2";
    if (distributed_) metadata["world_size"] = std::to_string(distributed_->world_size());
    metadata["trainer"] = j.dump();
    io::save_safetensors(path, tensors, metadata);
  }

  /// Restores the run saved in `path` (see the top of the file). Returns the file's metadata.
  std::map<std::string, std::string> load_checkpoint(const std::string& path) {
    const io::SafetensorsFile file = io::read_safetensors(path);
    auto fail = [&](const std::string& what) { return DataError("checkpoint '" + path + "': " + what); };
    const auto version = file.metadata.find("headnet_checkpoint");
    if (version == file.metadata.end() || !file.metadata.count("trainer")) {
      throw DataError("'" + path + "' is not a headnet checkpoint (its metadata has no trainer state)" +
                      (version != file.metadata.end() ? ": it was written by an older headnet; start the run again"
                                                      : std::string()));
    }
    const auto stored_world = file.metadata.find("world_size");
    const int world = distributed_ ? distributed_->world_size() : 1;
    const std::string written_by = stored_world == file.metadata.end() ? "1" : stored_world->second;
    if (written_by != std::to_string(world)) {
      throw fail("it was written by " + written_by + " process" + (written_by == "1" ? "" : "es") + ", this run has " +
                 std::to_string(world) + "; resume with the same number of processes (mpirun -np " + written_by + ")");
    }
    TrainerState s;
    data::LoaderState ls;
    OptimizerState<float> opt;
    std::int64_t scheduler_position = -1;
    std::vector<std::pair<Generator*, Generator::State>> generators;
    try {
      const nlohmann::json j = nlohmann::json::parse(file.metadata.at("trainer"));
      s.epoch = j.at("epoch");
      s.step = j.at("step");
      s.log_loss = parse_exact(j.at("log_loss"));
      s.curve_loss = parse_exact(j.at("curve_loss"));
      s.curve_count = j.at("curve_count");
      s.images_seen = j.at("images_seen");
      s.seconds = parse_exact(j.at("seconds"));
      for (const auto& p : j.at("loss_curve")) s.loss_curve.push_back({parse_exact(p.at(0)), parse_exact(p.at(1))});
      for (const auto& a : j.at("epoch_accuracy")) s.epoch_accuracy.push_back(parse_exact(a));
      ls.epoch_generator = parse_words(j.at("loader").at("generator"));
      ls.position = j.at("loader").at("position");
      ls.epoch = j.at("loader").at("epoch");
      const auto& o = j.at("optimizer");
      if (o.at("type").get<std::string>() != optimizer_.type()) {
        throw fail("it was written with the " + o.at("type").get<std::string>() + " optimiser, this run uses " +
                   optimizer_.type());
      }
      opt.steps = o.at("steps");
      for (const auto& v : o.at("lr")) opt.lr.push_back(parse_exact(v));
      for (const auto& v : o.at("momentum")) opt.momentum.push_back(parse_exact(v));
      if (j.contains("scheduler") != (scheduler_ != nullptr)) {
        throw fail(scheduler_ ? "it has no learning-rate schedule, this run has " + scheduler_->type()
                              : "it has a learning-rate schedule (" + j.at("scheduler").at("type").get<std::string>() +
                                    "), this run has none");
      }
      if (scheduler_) {
        if (j.at("scheduler").at("type").get<std::string>() != scheduler_->type()) {
          throw fail("its schedule is " + j.at("scheduler").at("type").get<std::string>() + ", this run's " +
                     scheduler_->type());
        }
        scheduler_position = j.at("scheduler").at("last_epoch");
      }
      for (const auto& g : model_.generators()) {
        if (!j.at("generators").contains(g.first)) throw fail("no state for the random stream '" + g.first + "'");
        generators.push_back({g.second, parse_words(j.at("generators").at(g.first))});
      }
      if (s.epoch < 0 || s.step < 0 || s.step > loader_.batches_per_epoch() || ls.position < 0 || ls.position > loader_.size())
        throw fail("its position (epoch " + std::to_string(s.epoch + 1) + ", step " + std::to_string(s.step) +
                   ") does not fit this data");
    } catch (const DataError&) {
      throw;
    } catch (const std::exception& e) {
      throw fail(std::string("malformed trainer state: ") + e.what());
    }
    const StateDict<float> all = io::to_state_dict<float>(file);
    for (const auto& e : all)
      if (e.name.rfind("model.", 0) != 0 && e.name.rfind("optimizer.", 0) != 0 && e.name.rfind("extra.", 0) != 0)
        throw fail("unexpected tensor '" + e.name + "'");
    for (const auto& extra : extras_) {
      const StateDict<float> saved = all.with_prefix_removed("extra." + extra.first + ".");
      for (const auto& e : extra.second) {
        const auto* given = saved.find(e.name);
        if (!given || given->value.shape() != e.value.shape())
          throw fail("its '" + extra.first + "' state has no tensor '" + e.name + "' of shape " + e.value.shape().str());
      }
    }
    opt.buffers = all.with_prefix_removed("optimizer.");
    const StateDict<float> backup = model_.state_dict().clone();
    try {
      model_.load_state_dict(all.with_prefix_removed("model."));
      optimizer_.load_state_dict(opt);
    } catch (const Error& e) {
      model_.load_state_dict(backup);
      throw fail(e.what());
    }
    if (scheduler_) scheduler_->set_last_epoch(scheduler_position);
    for (const auto& extra : extras_) {
      const StateDict<float> saved = all.with_prefix_removed("extra." + extra.first + ".");
      for (const auto& e : extra.second) {
        Tensor<float> target = e.value;
        const Tensor<float> source = saved.at(e.name);
        std::copy(source.begin(), source.end(), target.begin());
      }
    }
    for (auto& g : generators) g.first->set_state(g.second);
    loader_.set_state(ls);
    state_ = s;
    return file.metadata;
  }

  /// The metadata of a checkpoint (to rebuild the model a run used before resuming it).
  static std::map<std::string, std::string> checkpoint_metadata_of(const std::string& path) {
    return io::read_safetensors(path).metadata;
  }

 private:
  static std::string exact(double v) {  // hexadecimal floating point: parses back to the same bits
    char b[64];
    std::snprintf(b, sizeof b, "%a", v);
    return b;
  }
  static double parse_exact(const nlohmann::json& v) {
    const std::string text = v.get<std::string>();
    char* end = nullptr;
    const double d = std::strtod(text.c_str(), &end);
    if (end == text.c_str() || *end) throw Error("'" + text + "' is not a number");
    return d;
  }
  static nlohmann::json words(const Generator::State& state) {
    nlohmann::json a = nlohmann::json::array();
    for (auto w : state) a.push_back(std::to_string(w));
    return a;
  }
  static Generator::State parse_words(const nlohmann::json& a) {
    Generator::State state{};
    if (a.size() != state.size()) throw Error("a generator state needs 4 words");
    for (std::size_t i = 0; i < state.size(); ++i) state[i] = std::stoull(a.at(i).get<std::string>());
    return state;
  }

  // Names what went non-finite: a parameter, the input, or the first layer whose output is.
  std::string diagnose_nonfinite(const Tensor<float>& images) {
    for (auto& p : model_.parameters())
      if (!all_finite(p.value)) return "parameter " + p.name + " holds a NaN or infinity";
    if (!all_finite(images)) return "the input batch holds a NaN or infinity";
    std::string where;
    first_nonfinite(model_, images, "", where);
    return where.empty() ? "the logits are finite but the loss is not" : where + " is the first to output a NaN or infinity";
  }
  // Runs `layer` on x and, when its output is not finite, names the innermost layer that first
  // produces a NaN or infinity, looking inside Sequential chains and Residual branches (other blocks
  // are named as a whole). Returns the output.
  static Tensor<float> first_nonfinite(Layer<float>& layer, const Tensor<float>& x, const std::string& path,
                                       std::string& where) {
    auto join = [&](const std::string& name) { return name.empty() ? path : path.empty() ? name : path + "." + name; };
    if (auto* block = dynamic_cast<Residual<float>*>(&layer)) {
      for (auto& branch : block->children()) {
        const Tensor<float> y = first_nonfinite(*branch.layer, x, join(branch.name), where);
        if (!where.empty()) return y;
      }
    }
    auto* chain = dynamic_cast<Sequential<float>*>(&layer);
    if (!chain) {
      Tensor<float> y = layer.forward(x);
      if (where.empty() && !all_finite(y)) where = "layer '" + path + "' (" + layer.type() + ")";
      return y;
    }
    Tensor<float> h = x;
    for (std::size_t i = 0; i < chain->size() && where.empty(); ++i)
      if (!chain->is_fused(i)) h = first_nonfinite((*chain)[i], h, join(chain->name(i)), where);  // else in h already
    return h;
  }

  Layer<float>& model_;
  Optimizer<float>& optimizer_;
  data::Loader& loader_;
  TrainerOptions options_;
  LRScheduler<float>* scheduler_ = nullptr;
  std::vector<std::pair<std::string, StateDict<float>>> extras_;
  data::Loader* validation_ = nullptr;
  Distributed* distributed_ = nullptr;
  CrossEntropyLoss<float> criterion_;
  TrainerState state_;
};

}  // namespace train
}  // namespace headnet
