// cifar10-train: the PyTorch "Training a Classifier" CIFAR-10 tutorial, in C++ with headnet.
//
// Builds the tutorial network (conv widths from --conv1/--conv2), trains it with SGD (lr 0.001,
// momentum 0.9, batch 4, 2 epochs by default) on the five training batches, prints the tutorial's
// loss lines and accuracies, and writes results.json, three PNG charts and the weights (as a
// safetensors file that PyTorch's tutorial network can load) into --out, and with --export-onnx
// FILE the model as ONNX (also for a model given with --load). Checkpoints go to
// --out/checkpoint.safetensors every --checkpoint-every steps and at each epoch's end; --resume DIR
// continues a run from there, bit-identical to an uninterrupted run with the same thread count.
// Exit codes: 0 done, 1 bad data, files or arguments, 3 training diverged (NaN or infinity).
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>

#include "cifar10_common.hpp"

namespace {
std::map<std::string, std::string> onnx_metadata(const cifar10::Recipe& recipe, const cifar10::ImageSet& set) {
  auto metadata = cifar10::model_metadata("tutorial", headnet::data::Normalization::tutorial(), set);
  metadata.insert({{"trained_by", "cifar10-train"},
                   {"conv1", std::to_string(recipe.conv1)},
                   {"conv2", std::to_string(recipe.conv2)},
                   {"recipe", recipe.to_json().dump()}});
  return metadata;
}
}  // namespace

int main(int argc, char** argv) {
  headnet::bound_openmp_spinning(argv);  // a fair share of a busy machine (core/parallel.hpp)
  using namespace cifar10;
  Session mpi(argc, argv);  // under mpirun: one rank of a data-parallel run
  CLI::App app{"Train the PyTorch CIFAR-10 tutorial network with headnet", "cifar10-train"};
  Recipe recipe;
  std::string data_dir = "data";
  std::string out_dir = "runs/tutorial";
  std::string load_file;
  std::string resume_dir;
  std::string onnx_file;
  RunOptions run;
  bool quiet = false;
  app.add_option("--data", data_dir, "Folder with the CIFAR-10 binary batches (or their cifar-10-batches-bin/ parent)")
      ->capture_default_str();
  app.add_option("--epochs", recipe.epochs, "Passes over the 50,000 training images")
      ->capture_default_str()->check(CLI::Range(1, 10000));
  app.add_option("--batch", recipe.batch, "Mini-batch size")->capture_default_str()->check(CLI::Range(1, 50000));
  app.add_option("--lr", recipe.lr, "Learning rate (the peak one with --schedule onecycle)")
      ->capture_default_str()->check(CLI::Range(0.0, 100.0));
  app.add_option("--momentum", recipe.momentum, "SGD momentum (Adam's beta1 with --optimizer adam or adamw)")
      ->capture_default_str()->check(CLI::Range(0.0, 0.999999));
  app.add_option("--optimizer", recipe.optimizer, "sgd (the tutorial's), adam or adamw")
      ->capture_default_str()->check(CLI::IsMember({"sgd", "adam", "adamw"}));
  app.add_option("--weight-decay", recipe.weight_decay, "Weight decay (L2 for sgd and adam, decoupled for adamw)")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  app.add_option("--schedule", recipe.schedule,
                 "Learning-rate schedule over all steps: none (the tutorial's), cosine (to 0) or onecycle")
      ->capture_default_str()->check(CLI::IsMember({"none", "cosine", "onecycle"}));
  app.add_option("--seed", recipe.seed, "Seed for the initial weights and the shuffling")->capture_default_str();
  app.add_option("--threads", recipe.threads, "Threads (0: all cores)")->capture_default_str()->check(CLI::Range(0, 1024));
  app.add_option("--conv1", recipe.conv1, "Output channels of conv1 (the tutorial: 6)")
      ->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--conv2", recipe.conv2, "Output channels of conv2 (the tutorial: 16)")
      ->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--out", out_dir, "Folder for results.json, the charts and model.safetensors")->capture_default_str();
  app.add_option("--load", load_file, "Evaluate the weights in this safetensors file instead of training")
      ->check(CLI::ExistingFile);
  app.add_option("--checkpoint-every", run.checkpoint_every,
                 "Steps between checkpoints in --out (0: only at the end of each epoch)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--resume", resume_dir, "Continue the run whose --out folder this is, from its last checkpoint")
      ->check(CLI::ExistingDirectory)->excludes("--load");
  app.add_option("--debug-kill-at-step", run.kill_at_step,
                 "Testing only: kill the process with SIGKILL after this many steps")
      ->group("");  // hidden from --help
  app.add_option("--dataset", recipe.dataset,
                 "Data other than CIFAR-10 in --data: mnist:PATH, fashion-mnist:PATH, cifar100:PATH or imagefolder:PATH "
                 "(one subfolder per class)")
      ->capture_default_str();
  app.add_option("--image-size", recipe.image_size, "Side of the images of an imagefolder data set")
      ->capture_default_str()->check(CLI::Range(16, 1024));
  app.add_option("--val-fraction", recipe.val_fraction,
                 "Evaluate on this fraction of the training images, held out, instead of the test set (imagefolder: 0.2)")
      ->check(CLI::Range(0.0, 0.9));
  app.add_option("--image-cache-mb", recipe.image_cache_mb,
                 "Stream an imagefolder from disk when its decoded images exceed this many MB (default: half the memory)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--export-onnx", onnx_file, "Also write the trained model as ONNX to this file");
  app.add_flag("--quiet", quiet, "No progress line");
  CLI11_PARSE(app, argc, argv);
  if (recipe.dataset.rfind("imagefolder:", 0) == 0 && !(recipe.val_fraction > 0)) recipe.val_fraction = 0.2;

  try {
    quiet_unless_main(mpi);
    if (recipe.threads > 0) headnet::set_num_threads(recipe.threads);
    recipe.threads = headnet::num_threads();
    if (!resume_dir.empty()) out_dir = resume_dir;
    try {
      std::filesystem::create_directories(out_dir);
    } catch (const std::filesystem::filesystem_error& e) {
      throw headnet::Error("cannot create the output folder '" + out_dir + "': " + e.code().message());
    }
    if (mpi.rank() == 0) {  // fail now, not after training, when --out cannot take our files
      const std::string probe = out_dir + "/.write-test";
      write_text_atomically(probe, "");
      std::filesystem::remove(probe);
    }
    if (!resume_dir.empty()) {
      run.resume_from = resume_dir + "/checkpoint.safetensors";
      if (!std::filesystem::exists(run.resume_from)) {
        throw headnet::DataError("--resume " + resume_dir + ": no checkpoint.safetensors there");
      }
      const int threads_given = recipe.threads;
      recipe = checkpoint_recipe(run.resume_from);  // the run continues with its own recipe
      if (recipe.threads != threads_given) {
        std::printf("Resuming with the run's %d threads (results are bit-identical only for the same count)\n",
                    recipe.threads);
      }
      headnet::set_num_threads(recipe.threads);
    }
    const auto data = load_data(recipe, data_dir);
    const ImageSet& train = data.first;
    const ImageSet& test = data.second;
    auto make_net = [&] {
      return headnet::models::tutorial_net<float>(recipe.conv1, recipe.conv2, test.channels, test.height, test.width, test.classes);
    };

    if (!load_file.empty()) {
      // The network's widths come from the file's metadata when it has them.
      const auto file = headnet::io::read_safetensors(load_file);
      if (file.metadata.count("conv1")) recipe.conv1 = std::stoi(file.metadata.at("conv1"));
      if (file.metadata.count("conv2")) recipe.conv2 = std::stoi(file.metadata.at("conv2"));
      auto net = make_net();
      try {
        net.load_state_dict(headnet::io::load_safetensors<float>(load_file));
      } catch (const headnet::DataError&) {
        throw;
      } catch (const headnet::Error& e) {
        throw headnet::DataError("'" + load_file + "' does not fit the network: " + e.what());
      }
      const Evaluation e = evaluate(net, test, recipe.eval_batch);
      std::printf("Accuracy of the network on the %lld test images: %d %%\n", (long long)test.size(), int(e.accuracy));
      for (int c = 0; c < test.classes; ++c)
        std::printf("Accuracy for class: %-5s is %.1f %%\n", test.class_name(c).c_str(), e.class_accuracy[std::size_t(c)]);
      nlohmann::json j = evaluation_json(e, test.names());
      j["weights"] = load_file;
      if (mpi.rank() != 0) return 0;
      write_text_atomically(out_dir + "/evaluation.json", j.dump(2) + "\n");
      if (!onnx_file.empty()) {
        export_onnx(onnx_file, net, onnx_metadata(recipe, test), test);
        std::printf("Wrote %s\n", onnx_file.c_str());
      }
      return 0;
    }

    headnet::manual_seed(recipe.seed);
    auto net = make_net();
    check_batch_splits(recipe.batch, mpi.size());
    const auto parallel = data_parallel(mpi, net);
    run.rank = mpi.rank(), run.world = mpi.size(), run.distributed = parallel.get();
    std::printf("headnet %s, %d threads%s, seed %llu\n%s", HEADNET_VERSION_STRING, recipe.threads,
                mpi.active() ? (" x " + std::to_string(mpi.size()) + " processes (MPI)").c_str() : "",
                (unsigned long long)recipe.seed, net.summary({recipe.batch, test.channels, test.height, test.width}).c_str());
    std::fflush(stdout);

    run.checkpoint_path = out_dir + "/checkpoint.safetensors";
    run.progress = !quiet;
    run.log = [](const std::string& line) {
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
    };
    const RunResult r = train_and_evaluate(recipe, train, test, net, run);
    std::printf("Finished Training in %.1f s (%.0f images/s)\n", r.train_seconds, r.images_per_second);
    std::printf("Accuracy of the network on the %lld test images: %d %%\n", (long long)test.size(), int(r.test.accuracy));
    for (int c = 0; c < test.classes; ++c)
      std::printf("Accuracy for class: %-5s is %.1f %%\n", test.class_name(c).c_str(), r.test.class_accuracy[std::size_t(c)]);
    if (mpi.rank() != 0) return 0;  // the files are rank 0's to write
    show_test_images(net, test, out_dir + "/test_images.png");

    auto metadata = model_metadata("tutorial", headnet::data::Normalization::tutorial(), test);
    metadata.insert({{"format", "pt"},
                     {"conv1", std::to_string(recipe.conv1)},
                     {"conv2", std::to_string(recipe.conv2)},
                     {"recipe", recipe.to_json().dump()}});
    headnet::io::save_safetensors(out_dir + "/model.safetensors", net.state_dict(), metadata);
    if (!onnx_file.empty()) {
      export_onnx(onnx_file, net, onnx_metadata(recipe, test), test);
      std::printf("Wrote %s\n", onnx_file.c_str());
    }
    write_text_atomically(out_dir + "/results.json", run_json(r).dump(2) + "\n");
    draw_run_charts(out_dir, r, "conv1 " + std::to_string(recipe.conv1) + ", conv2 " + std::to_string(recipe.conv2));
    std::printf("Wrote %s/results.json, model.safetensors, class_accuracy.png, loss.png, confusion.png, test_images.png\n",
                out_dir.c_str());
    return 0;
  } catch (const headnet::NumericError& e) {
    return mpi.abort("cifar10-train", e.what(), 3);
  } catch (const std::exception& e) {
    return mpi.abort("cifar10-train", e.what(), 1);
  }
}
