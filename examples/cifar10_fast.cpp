// cifar10-fast: the airbench94 recipe (Keller Jordan, 2024) in headnet, its numbers from
// shared/guides/FAST_CIFAR10.md. A BatchNorm + GELU network without residuals, whitened input
// patches, identity-initialised convolutions, SGD with Nesterov momentum in two parameter groups,
// a warm-up then linear-decay schedule, lookahead, alternating flips and translations, and
// test-time augmentation.
//
// Writes into --out: results.json (the recipe, per-epoch loss and test accuracy, final accuracy
// with and without TTA, times, images/s), model.safetensors (the state dict), accuracy.png,
// loss.png, class_accuracy.png, confusion.png; with --export-onnx FILE also the model as ONNX
// (io/onnx.hpp), with the class names and the input normalisation in its metadata. --resume DIR continues a run from its checkpoint.
// Exit codes: 0 done, 1 bad data, files or arguments, 3 training diverged.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include <CLI/CLI.hpp>

#include "cifar10_common.hpp"
#include <headnet/models/airbench.hpp>

namespace {

using namespace headnet;

// Every hyperparameter of the recipe, printed into results.json.
struct FastRecipe {
  double epochs = 9.9;
  int batch = 1024;
  int width1 = 64, width2 = 256, width3 = 256;
  double lr = 11.5 / (1024 * (1 + 1 / 0.15));  // per summed-loss step; BatchNorm biases get 64x
  double bias_lr_scale = 64;
  double weight_decay_product = 1.9957e-3;    // lr x weight decay, the same for both groups
  double momentum = 0.85;
  double label_smoothing = 0.2;
  double warmup = 0.23;                        // fraction of steps of linear warm-up from 0.2
  double final_factor = 0.07;
  int whiten_bias_epochs = 3;
  int tta = 2;
  bool whiten = true, dirac = true, lookahead = true, alternating_flip = true;
  std::uint64_t seed = 0;
  int threads = 0;
  std::int64_t train_subset = 0;  // 0: all 50,000 training images
  std::string dataset = "cifar10";  // or KIND:PATH, as cifar10-train's --dataset
  double val_fraction = 0;
  std::int64_t image_cache_mb = -1;  // not in results.json: cached and streamed runs are the same run
  std::string conv_algorithm = "automatic";  // kernels::ConvAlgorithm by name

  nlohmann::json to_json() const {
    return {{"epochs", epochs}, {"batch", batch}, {"widths", {width1, width2, width3}}, {"lr", lr},
            {"bias_lr_scale", bias_lr_scale}, {"weight_decay_product", weight_decay_product}, {"momentum", momentum},
            {"label_smoothing", label_smoothing}, {"warmup", warmup}, {"final_factor", final_factor},
            {"whiten_bias_epochs", whiten_bias_epochs}, {"tta", tta}, {"whiten", whiten}, {"dirac", dirac},
            {"lookahead", lookahead}, {"alternating_flip", alternating_flip}, {"seed", seed}, {"threads", threads},
            {"train_subset", train_subset}, {"dataset", dataset}, {"val_fraction", val_fraction},
            {"conv_algorithm", conv_algorithm}};
  }
};

Sequential<float> fast_net(const FastRecipe& r, const data::ImageSet& set) {
  auto net = models::airbench<float>(r.width1, r.width2, r.width3, set.classes, set.channels);
  set_conv_algorithm(net, kernels::parse_conv_algorithm(r.conv_algorithm));
  return net;
}

// --debug-lockstep: hands the trainer the loader's batches and keeps a copy of the first `keep`,
// so that scripts/lockstep_fast.py can replay exactly those images in PyTorch.
class RecordingLoader : public data::Loader {
 public:
  RecordingLoader(data::Loader& loader, std::int64_t keep) : loader_(loader), keep_(keep) {}
  bool next(Tensor<float>& images, std::vector<std::int32_t>& labels) override {
    if (!loader_.next(images, labels)) return false;
    if (std::int64_t(images_.size()) < keep_) {
      images_.push_back(images.clone());
      Tensor<float> l({std::int64_t(labels.size())});
      for (std::size_t i = 0; i < labels.size(); ++i) l.data()[i] = float(labels[i]);
      labels_.push_back(l);
    }
    return true;
  }
  void start_epoch() override { loader_.start_epoch(); }
  std::int64_t size() const override { return loader_.size(); }
  std::int64_t batches_per_epoch() const override { return loader_.batches_per_epoch(); }
  data::LoaderState state() const override { return loader_.state(); }
  void set_state(const data::LoaderState& state) override { loader_.set_state(state); }
  void append_to(StateDict<float>& out) const {
    for (std::size_t k = 0; k < images_.size(); ++k) {
      out.add("batch." + std::to_string(k) + ".images", images_[k]);
      out.add("batch." + std::to_string(k) + ".labels", labels_[k]);
    }
  }

 private:
  data::Loader& loader_;
  std::int64_t keep_;
  std::vector<Tensor<float>> images_, labels_;
};

data::Normalization cifar_normalization() {
  data::Normalization n;
  n.mean = {0.4914f, 0.4822f, 0.4465f};
  n.std = {0.2470f, 0.2435f, 0.2616f};
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  headnet::bound_openmp_spinning(argv);  // a fair share of a busy machine (core/parallel.hpp)
  cifar10::Session mpi(argc, argv);  // under mpirun: one rank of a data-parallel run
  CLI::App app{"Train CIFAR-10 with the airbench94 recipe (94% in about 10 epochs)", "cifar10-fast"};
  FastRecipe r;
  std::string data_dir = "data", out_dir = "runs/fast", resume_dir, onnx_file;
  std::int64_t checkpoint_every = 48, kill_at_step = 0, lockstep_steps = 0;
  bool sync_batchnorm = false;
  bool quiet = false, no_whiten = false, no_dirac = false, no_lookahead = false, no_alt_flip = false;
  app.add_option("--data", data_dir, "Folder with the CIFAR-10 binary batches")->capture_default_str();
  app.add_option("--out", out_dir, "Folder for results.json, model.safetensors and the charts")->capture_default_str();
  app.add_option("--epochs", r.epochs, "Epochs (may be fractional)")->capture_default_str()->check(CLI::Range(0.05, 1000.0));
  app.add_option("--batch", r.batch, "Batch size")->capture_default_str()->check(CLI::Range(2, 50000));
  app.add_option("--width1", r.width1, "Channels of block 1")->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--width2", r.width2, "Channels of block 2")->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--width3", r.width3, "Channels of block 3")->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--tta", r.tta, "Test-time augmentation level: 0, 1 (mirror) or 2 (six views)")
      ->capture_default_str()->check(CLI::Range(0, 2));
  app.add_option("--label-smoothing", r.label_smoothing, "Label smoothing")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  app.add_flag("--no-whiten", no_whiten, "Ablation: a trained 2x2 convolution instead of the whitening one");
  app.add_flag("--no-dirac", no_dirac, "Ablation: no identity initialisation of the 3x3 convolutions");
  app.add_flag("--no-lookahead", no_lookahead, "Ablation: no lookahead");
  app.add_flag("--no-alt-flip", no_alt_flip, "Ablation: random flips instead of alternating ones");
  app.add_option("--seed", r.seed, "Seed")->capture_default_str();
  app.add_option("--threads", r.threads, "Threads (0: all cores)")->capture_default_str()->check(CLI::Range(0, 1024));
  app.add_option("--conv-algorithm", r.conv_algorithm,
                 "Convolution kernels of every layer: automatic, direct, im2col_gemm, winograd_4x4, winograd_3x3 or winograd_2x2 "
                 "(a layer the forced one cannot compute gets the automatic choice)")
      ->capture_default_str()
      ->check(CLI::IsMember({"automatic", "direct", "im2col_gemm", "winograd_4x4", "winograd_3x3", "winograd_2x2"}));
  app.add_option("--train-subset", r.train_subset, "Train on the first N training images only (for quick checks)")
      ->check(CLI::Range(std::int64_t(1), std::int64_t(50000)));
  app.add_option("--checkpoint-every", checkpoint_every, "Steps between checkpoints (0: at epoch ends only)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--resume", resume_dir, "Continue the run in this --out folder from its checkpoint")->check(CLI::ExistingDirectory);
  app.add_option("--debug-kill-at-step", kill_at_step, "Testing only")->group("");
  app.add_option("--debug-lockstep", lockstep_steps,
                 "Testing only: stop after N steps and write OUT/lockstep.safetensors for scripts/lockstep_fast.py")
      ->group("")->check(CLI::PositiveNumber);
  app.add_option("--dataset", r.dataset,
                 "Data other than CIFAR-10 in --data: mnist:PATH, fashion-mnist:PATH, cifar100:PATH or imagefolder:PATH "
                 "(images of 25 to 32 pixels a side; image folders are read at 32x32)")
      ->capture_default_str();
  app.add_option("--val-fraction", r.val_fraction,
                 "Evaluate on this fraction of the training images, held out, instead of the test set (imagefolder: 0.2)")
      ->check(CLI::Range(0.0, 0.9));
  app.add_option("--image-cache-mb", r.image_cache_mb,
                 "Stream an imagefolder from disk when its decoded images exceed this many MB (default: half the memory)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--export-onnx", onnx_file, "Also write the trained model as ONNX to this file");
  app.add_flag("--sync-batchnorm", sync_batchnorm,
               "Under mpirun: BatchNorm statistics over all processes' images (default: each process its own)");
  app.add_flag("--quiet", quiet, "No progress line");
  CLI11_PARSE(app, argc, argv);
  if (r.dataset.rfind("imagefolder:", 0) == 0 && !(r.val_fraction > 0)) r.val_fraction = 0.2;
  r.whiten = !no_whiten;
  r.dirac = !no_dirac;
  r.lookahead = !no_lookahead;
  r.alternating_flip = !no_alt_flip;

  try {
    cifar10::quiet_unless_main(mpi);
    if (!resume_dir.empty()) {
      out_dir = resume_dir;
      const auto metadata = train::Trainer::checkpoint_metadata_of(resume_dir + "/checkpoint.safetensors");
      if (!metadata.count("fast_recipe")) throw DataError("'" + resume_dir + "/checkpoint.safetensors' is not a cifar10-fast checkpoint");
      const auto j = nlohmann::json::parse(metadata.at("fast_recipe"));
      r.epochs = j.at("epochs"), r.batch = j.at("batch"), r.width1 = j.at("widths")[0], r.width2 = j.at("widths")[1];
      r.width3 = j.at("widths")[2], r.tta = j.at("tta"), r.label_smoothing = j.at("label_smoothing"), r.whiten = j.at("whiten");
      r.dirac = j.at("dirac"), r.lookahead = j.at("lookahead"), r.alternating_flip = j.at("alternating_flip");
      r.seed = j.at("seed"), r.threads = j.at("threads"), r.train_subset = j.at("train_subset");
      r.dataset = j.value("dataset", r.dataset), r.val_fraction = j.value("val_fraction", r.val_fraction);
      r.conv_algorithm = j.value("conv_algorithm", r.conv_algorithm);
    }
    if (r.threads > 0) set_num_threads(r.threads);
    r.threads = num_threads();
    std::filesystem::create_directories(out_dir);
    cifar10::Recipe data_recipe;
    data_recipe.dataset = r.dataset, data_recipe.val_fraction = r.val_fraction, data_recipe.seed = r.seed;
    data_recipe.image_cache_mb = r.image_cache_mb;
    auto sets = cifar10::load_data(data_recipe, data_dir);
    data::ImageSet& train_set = sets.first;
    const data::ImageSet& test_set = sets.second;
    if (r.train_subset > 0 && r.train_subset < train_set.size()) {
      train_set.labels.resize(std::size_t(r.train_subset));
      if (train_set.streamed())
        train_set.files.resize(std::size_t(r.train_subset));
      else
        train_set.pixels.resize(std::size_t(r.train_subset * train_set.image_bytes()));
    }
    if (test_set.height < 25 || test_set.height > 32 || test_set.width < 25 || test_set.width > 32) {
      throw Error("cifar10-fast's network takes images of 25 to 32 pixels a side, the data has " + std::to_string(test_set.height) +
                  "x" + std::to_string(test_set.width));
    }
    // CIFAR-10's published statistics, or the training images' own for other data.
    const data::Normalization normalization =
        r.dataset == "cifar10" ? cifar_normalization() : data::Normalization::from_statistics(train_set);

    manual_seed(r.seed);
    auto net = fast_net(r, test_set);
    {  // The whitening convolution's bias starts at 0 (PyTorch's default draws it, as for any conv).
      Tensor<float> bias = net.state_dict().at("whiten.bias");
      init::zeros_(bias);
    }
    // Identity on the first in_channels filters of each 3x3 conv (all of each block's conv2).
    if (r.dirac)
      for (const char* block : {"block1", "block2", "block3"})
        for (const char* conv : {"conv1", "conv2"}) {
          Tensor<float> w = net.state_dict().at(std::string(block) + "." + conv + ".weight");
          Tensor<float> first = w.slice(0, std::min(w.size(0), w.size(1)));
          init::dirac_(first);
        }
    for (const auto& p : net.parameters())
      if (p.name.find("norm") != std::string::npos && p.name.size() > 7 && p.name.compare(p.name.size() - 7, 7, ".weight") == 0)
        net.set_requires_grad(p.name, false);  // BatchNorm weights stay 1; only their biases train
    if (r.whiten) {
      data::BatchLoader first(train_set, int(std::min<std::int64_t>(5000, train_set.size())), false, 0, normalization);
      Tensor<float> images;
      std::vector<std::int32_t> labels;
      first.next(images, labels);
      Tensor<float> w = net.state_dict().at("whiten.weight");
      init::whitening_(w, images, 5e-4);
      net.set_requires_grad("whiten.weight", false);
    }

    // Under mpirun each rank takes batch / processes images of every batch; the loss is summed
    // over the batch, so the gradients are summed over the ranks, not averaged.
    cifar10::check_batch_splits(r.batch, mpi.size());
    const auto parallel = cifar10::data_parallel(mpi, net, true, sync_batchnorm);
    data::BatchLoader loader(train_set, r.batch / mpi.size(), true, r.seed, normalization);
    if (parallel) loader.set_shard(mpi.rank(), mpi.size());
    loader.set_drop_last(true);
    data::AugmentOptions augment;
    augment.pad = 2;
    augment.flip = r.alternating_flip ? data::Flip::alternating : data::Flip::random;
    loader.set_augmentation(augment, r.seed);
    data::BatchLoader test(test_set, 1000, false, 0, normalization);

    // Groups: BatchNorm biases at 64x the learning rate, weight decay such that lr x wd is the same
    // for all; the whitening bias in a group of its own, whose rate goes to 0 after
    // whiten_bias_epochs (then it no longer moves at all, weight decay and momentum included).
    std::vector<Parameter<float>> main_group, bias_group, whiten_group;
    for (const auto& p : net.trainable_parameters()) {
      if (p.name.find("norm") != std::string::npos) bias_group.push_back(p);
      else if (r.whiten && p.name == "whiten.bias") whiten_group.push_back(p);
      else main_group.push_back(p);
    }
    const double bias_lr = r.lr * r.bias_lr_scale;
    auto options_for = [&](double lr) {
      return SGDOptions(lr).momentum(r.momentum).nesterov(true).weight_decay(r.weight_decay_product / lr);
    };
    SGD<float> sgd({{main_group, options_for(r.lr)}, {bias_group, options_for(bias_lr)}, {whiten_group, options_for(r.lr)}});
    const std::int64_t total_steps = std::int64_t(std::ceil(double(loader.batches_per_epoch()) * r.epochs));
    PiecewiseLinearLR<float> schedule(sgd, {0, std::round(r.warmup * double(total_steps)), double(total_steps)},
                                      {0.2, 1.0, r.final_factor});
    auto freeze_whitening_bias = [&] { schedule.set_base_lr(2, 0.0); };
    train::ModelAverage<float> lookahead(net);

    train::TrainerOptions options;
    options.epochs = int(std::ceil(r.epochs));
    options.max_steps = total_steps;
    options.progress = !quiet;
    options.checkpoint_path = out_dir + "/checkpoint.safetensors";
    options.checkpoint_every = checkpoint_every;
    options.debug_kill_at_step = kill_at_step;
    options.curve_points_per_epoch = 1;  // the loss curve is the mean loss of each epoch (checkpointed)
    // --debug-lockstep N: the first N steps of the full run (the schedule still spans total_steps),
    // with the initial state, the batches, the losses and the state after them.
    RecordingLoader recorder(loader, lockstep_steps);
    StateDict<float> lockstep;
    std::vector<float> lockstep_losses;
    if (lockstep_steps > 0) {
      if (!resume_dir.empty() || parallel) throw Error("--debug-lockstep takes a fresh, single-process run");
      options.max_steps = std::min(lockstep_steps, total_steps);
      options.checkpoint_path.clear();
      lockstep.append(net.state_dict().clone(), "init.");
    }
    train::Trainer trainer(net, sgd, lockstep_steps > 0 ? static_cast<data::Loader&>(recorder) : loader, options);
    trainer.set_distributed(parallel.get());
    trainer.criterion() = CrossEntropyLoss<float>(Reduction::sum, r.label_smoothing);
    trainer.set_scheduler(&schedule);
    trainer.set_validation(&test);
    trainer.checkpoint_metadata = {{"fast_recipe", r.to_json().dump()}};
    if (r.lookahead) trainer.checkpoint_extra("lookahead", lookahead.average());
    trainer.on_step = [&](const train::StepInfo& s) {
      if (lockstep_steps > 0) lockstep_losses.push_back(s.loss);
      if (r.lookahead && s.global_step % 5 == 0) {
        const double progress = double(s.global_step) / double(total_steps);
        lookahead.update(std::pow(0.95, 5) * progress * progress * progress);
        lookahead.copy_to_model();
      }
    };
    trainer.on_epoch_end = [&](int epoch, const train::TrainerState&) {
      if (epoch + 1 == r.whiten_bias_epochs) freeze_whitening_bias();
    };
    if (!resume_dir.empty()) {
      trainer.load_checkpoint(resume_dir + "/checkpoint.safetensors");
      if (trainer.state().epoch >= r.whiten_bias_epochs) freeze_whitening_bias();
      std::printf("Resuming at epoch %d, step %lld\n", trainer.state().epoch + 1, (long long)trainer.state().step);
    }
    std::printf("headnet %s, cifar10-fast, %d threads%s, seed %llu, %lld steps\n%s", HEADNET_VERSION_STRING, r.threads,
                mpi.active() ? (" x " + std::to_string(mpi.size()) + " processes (MPI)").c_str() : "", (unsigned long long)r.seed, (long long)total_steps, net.summary({r.batch, test_set.channels, test_set.height, test_set.width}).c_str());
    std::fflush(stdout);
    trainer.fit();
    if (lockstep_steps > 0) {
      Tensor<float> losses({std::int64_t(lockstep_losses.size())});
      std::copy(lockstep_losses.begin(), lockstep_losses.end(), losses.data());
      lockstep.add("loss", losses);
      lockstep.append(net.state_dict(), "final.");
      recorder.append_to(lockstep);
      io::save_safetensors(out_dir + "/lockstep.safetensors", lockstep,
                           {{"fast_recipe", r.to_json().dump()}, {"total_steps", std::to_string(total_steps)},
                            {"batches_per_epoch", std::to_string(loader.batches_per_epoch())}});
      std::printf("Wrote %s/lockstep.safetensors (%zu steps)\n", out_dir.c_str(), lockstep_losses.size());
      return 0;
    }
    if (r.lookahead) lookahead.copy_to_model();
    std::vector<double> epoch_loss;  // mean loss per image of each epoch (the last may be partial)
    for (const auto& point : trainer.state().loss_curve) epoch_loss.push_back(point.second / r.batch);
    if (trainer.state().curve_count > 0)
      epoch_loss.push_back(trainer.state().curve_loss / double(trainer.state().curve_count) / r.batch);

    const auto eval_start = std::chrono::steady_clock::now();
    const train::Evaluation plain = train::evaluate(net, test);
    const train::Evaluation tta = train::evaluate_tta(net, test, r.tta);
    const double eval_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - eval_start).count();
    std::printf("Test accuracy %.2f%% without TTA, %.2f%% with TTA level %d; training %.1f s (%.0f images/s), evaluation %.1f s\n",
                plain.accuracy, tta.accuracy, r.tta, trainer.state().seconds, trainer.images_per_second(), eval_seconds);

    if (mpi.rank() != 0) return 0;  // the files are rank 0's to write
    nlohmann::json results = cifar10::evaluation_json(tta, test_set.names());
    results["recipe"] = r.to_json();
    results["test_accuracy_without_tta"] = plain.accuracy;
    results["epoch_test_accuracy"] = trainer.state().epoch_accuracy;
    results["epoch_train_loss"] = epoch_loss;
    results["train_seconds"] = trainer.state().seconds;
    results["eval_seconds"] = eval_seconds;
    results["images_per_second"] = trainer.images_per_second();
    results["headnet_version"] = HEADNET_VERSION_STRING;
    auto metadata = cifar10::model_metadata("airbench", normalization, test_set);
    metadata.insert({{"format", "pt"}, {"fast_recipe", r.to_json().dump()}});
    io::save_safetensors(out_dir + "/model.safetensors", net.state_dict(), metadata);
    if (!onnx_file.empty()) {
      auto onnx_metadata = cifar10::model_metadata("airbench", normalization, test_set);
      onnx_metadata.insert({{"trained_by", "cifar10-fast"}, {"fast_recipe", r.to_json().dump()}});
      cifar10::export_onnx(onnx_file, net, onnx_metadata, test_set);
      std::printf("Wrote %s\n", onnx_file.c_str());
    }
    cifar10::write_text_atomically(out_dir + "/results.json", results.dump(2) + "\n");
    viz::LineSeries accuracy{"test accuracy", {}, trainer.state().epoch_accuracy};
    viz::LineSeries loss{"training loss", {}, epoch_loss};
    for (std::size_t e = 0; e < accuracy.y.size(); ++e) accuracy.x.push_back(double(e + 1));
    for (std::size_t e = 0; e < loss.y.size(); ++e) loss.x.push_back(double(e + 1));
    viz::line_chart(out_dir + "/accuracy.png", "Test accuracy per epoch (no TTA)", "epoch", "accuracy (%)", {accuracy});
    viz::line_chart(out_dir + "/loss.png", "Training loss per epoch", "epoch", "cross-entropy (smoothed labels)", {loss});
    viz::bar_chart(out_dir + "/class_accuracy.png", "Per-class test accuracy with TTA (" + viz::fixed(tta.accuracy, 2) + "%)",
                   test_set.names(), tta.class_accuracy, "accuracy (%)", 100);
    viz::heatmap(out_dir + "/confusion.png", "Confusion matrix with TTA", test_set.names(), tta.confusion, "true class",
                 "predicted class");
    std::printf("Wrote %s/results.json, model.safetensors, accuracy.png, loss.png, class_accuracy.png, confusion.png\n",
                out_dir.c_str());
    return 0;
  } catch (const NumericError& e) {
    return mpi.abort("cifar10-fast", e.what(), 3);
  } catch (const std::exception& e) {
    return mpi.abort("cifar10-fast", e.what(), 1);
  }
}
