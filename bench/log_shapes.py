"""Real log shapes, written here from each framework's documentation in its published layout.

Each entry: (name, file name, text, expected first loss in nats or as printed). Used by
bench/evidence.py (coverage table) and tests/evidence/test_evidence_v2_shapes.py.
"""

from __future__ import annotations

import json

_TS = "[2024-05-01 12:00:00]"
SHAPES: list[tuple[str, str, str, float]] = [
    (
        "Megatron-LM console",
        "train.log",
        f" {_TS} iteration        1/  500000 | consumed samples:          512 | elapsed time "
        "per iteration (ms): 4321.0 | learning rate: 1.500000E-07 | global batch size:   512 "
        "| lm loss: 1.089234E+01 | loss scale: 1.0 | grad norm: 12.345 | number of skipped "
        "iterations:   0 | number of nan iterations:   0 |\n"
        f" {_TS} iteration        2/  500000 | consumed samples:         1024 | elapsed time "
        "per iteration (ms): 1321.0 | learning rate: 3.000000E-07 | global batch size:   512 "
        "| lm loss: 1.071234E+01 | loss scale: 1.0 | grad norm: 10.345 | number of skipped "
        "iterations:   0 | number of nan iterations:   0 |\n",
        10.89234,
    ),
    (
        "GPT-NeoX console",
        "neox.log",
        " iteration        1/  320000 | elapsed time per iteration (ms): 1234.5 | learning "
        "rate: 1.000E-07 | approx flops per GPU: 100.0TFLOPS | lm_loss: 1.098765E+01 | loss "
        "scale: 65536.0 | number of skipped iterations:   0 | number of nan iterations:   0 |\n"
        " iteration        2/  320000 | elapsed time per iteration (ms): 1234.5 | learning "
        "rate: 2.000E-07 | approx flops per GPU: 100.0TFLOPS | lm_loss: 1.078765E+01 | loss "
        "scale: 65536.0 | number of skipped iterations:   0 | number of nan iterations:   0 |\n",
        10.98765,
    ),
    (
        "NeMo 2",
        "nemo_log_globalrank-0.txt",
        "Training epoch 0, iteration 0/99 | lr: 1.499e-07 | global_batch_size: 32 | "
        "global_step: 0 | reduced_train_loss: 10.87 | train_step_timing in s: 1.2 | "
        "consumed_samples: 32\n"
        "Training epoch 0, iteration 1/99 | lr: 2.999e-07 | global_batch_size: 32 | "
        "global_step: 1 | reduced_train_loss: 10.66 | train_step_timing in s: 0.5 | "
        "consumed_samples: 64\n",
        10.87,
    ),
    (
        "torchtitan",
        "torchtitan.log",
        "[rank0]:2024-05-01 12:00:00,000 - root - INFO - step:  1  loss: 12.2365  memory: "
        "14.23GiB(14.98%)  tps: 1,234  mfu: 1.23%\n"
        "[rank0]:2024-05-01 12:00:01,000 - root - INFO - step:  2  loss: 12.0012  memory: "
        "14.23GiB(14.98%)  tps: 4,321  mfu: 4.56%\n",
        12.2365,
    ),
    (
        "nanoGPT iterations",
        "nanogpt.log",
        "iter 0: loss 10.9876, time 12345.67ms, mfu -100.00%\n"
        "iter 1: loss 10.8765, time 345.67ms, mfu -100.00%\n",
        10.9876,
    ),
    (
        "nanoGPT eval lines only",
        "nanogpt_eval.log",
        "step 0: train loss 10.9876, val loss 10.9901\n"
        "step 250: train loss 6.1234, val loss 6.2345\n",
        10.9876,
    ),
    (
        "llm.c train_gpt2 stdout",
        "llmc.log",
        "step    1/19560 | train loss 11.010609 | norm 15.3106 | lr 8.39e-07 | 1234.56 ms | "
        "-100.0% A100 fp16 MFU | 424712 tok/s\n"
        "step    2/19560 | train loss 10.950000 | norm 14.1106 | lr 1.68e-06 | 234.56 ms | "
        "-100.0% A100 fp16 MFU | 424712 tok/s\n",
        11.010609,
    ),
    ("llm.c main.log", "main.log", "s:0 tel:10.9820\ns:0 trl:11.0106\ns:1 trl:10.9500\n", 11.0106),
    (
        "modded-nanogpt record",
        "record.txt",
        "step:0/1770 val_loss:10.8258 train_time:0ms step_avg:nanms\n"
        "step:1/1770 train_loss:10.8258 train_time:22ms step_avg:nanms\n"
        "step:2/1770 train_loss:10.1234 train_time:44ms step_avg:nanms\n",
        10.8258,
    ),
    (
        "build-nanogpt log.txt",
        "log.txt",
        "0 val 10.9513\n0 hella 0.2455\n0 train 10.955208\n1 train 10.271234\n",
        10.955208,
    ),
    (
        "HF Trainer console",
        "hf.log",
        "{'loss': 2.4839, 'grad_norm': 1.234, 'learning_rate': 1.9e-05, 'epoch': 0.01}\n"
        "{'loss': 2.3012, 'grad_norm': 1.111, 'learning_rate': 1.8e-05, 'epoch': 0.02}\n",
        2.4839,
    ),
    (
        "HF model card results table",
        "README.md",
        "| Training Loss | Epoch | Step | Validation Loss |\n"
        "|:-------------:|:-----:|:----:|:---------------:|\n"
        "| 2.9121        | 1.0   | 500  | 2.8734          |\n"
        "| 2.4410        | 2.0   | 1000 | 2.3998          |\n",
        2.9121,
    ),
    (
        "HF trainer_state.json",
        "trainer_state.json",
        json.dumps(
            {
                "global_step": 2,
                "log_history": [
                    {
                        "epoch": 0.01,
                        "grad_norm": 1.2,
                        "learning_rate": 1e-05,
                        "loss": 2.31,
                        "step": 1,
                    },
                    {
                        "epoch": 0.02,
                        "grad_norm": 1.1,
                        "learning_rate": 2e-05,
                        "loss": 2.21,
                        "step": 2,
                    },
                ],
            },
            indent=2,
        ),
        2.31,
    ),
    (
        "LLaMA-Factory trainer_log.jsonl",
        "trainer_log.jsonl",
        '{"current_steps": 1, "total_steps": 100, "loss": 2.31, "lr": 1e-05, "epoch": 0.01, '
        '"percentage": 1.0, "elapsed_time": "0:00:05", "remaining_time": "0:08:15"}\n'
        '{"current_steps": 2, "total_steps": 100, "loss": 2.21, "lr": 2e-05, "epoch": 0.02, '
        '"percentage": 2.0, "elapsed_time": "0:00:10", "remaining_time": "0:08:10"}\n',
        2.31,
    ),
    (
        "W&B panel CSV export",
        "wandb_export.csv",
        '"Step","run-1 - train/loss","run-1 - train/loss__MIN","run-1 - train/loss__MAX"\n'
        "1,10.91,10.91,10.91\n2,10.52,10.52,10.52\n",
        10.91,
    ),
    (
        "Megatron golden values (dict)",
        "golden_values_dev.json",
        json.dumps(
            {
                "lm loss": {
                    "start_step": 1,
                    "end_step": 10,
                    "step_interval": 5,
                    "values": {"1": 10.84, "6": 10.21},
                },
                "mem-allocated-bytes": {
                    "start_step": 1,
                    "end_step": 10,
                    "step_interval": 5,
                    "values": {"1": 1.2e9, "6": 1.2e9},
                },
            },
            indent=2,
        ),
        10.84,
    ),
    (
        "Megatron golden values (list)",
        "golden_values_lts.json",
        json.dumps(
            {
                "lm loss": {
                    "start_step": 0,
                    "end_step": 10,
                    "step_interval": 5,
                    "values": [10.84, 10.21],
                }
            }
        ),
        10.84,
    ),
    (
        "DeepSpeed-Chat step-1 perplexity",
        "training.log",
        "***** Running training *****\n***** Evaluating perplexity, Epoch 0/16 *****\n"
        "ppl: 52341.2\nBeginning of Epoch 1/16, Total Micro Batches 920\n"
        "***** Evaluating perplexity, Epoch 1/16 *****\nppl: 19.5\n",
        10.865575,
    ),
    (
        "DeepSpeed-Chat epoch loss",
        "training_epochs.log",
        "Beginning of Epoch 1/3, Total Micro Batches 20\nEpoch 1/3 with loss 5.2428\n",
        5.2428,
    ),
    (
        "PyTorch Lightning progress bar",
        "lightning.log",
        "Epoch 0:  10%|█         | 100/1000 [00:10<01:30, 10.00it/s, v_num=0, "
        "train_loss=9.870]\n"
        "Epoch 0:  20%|██        | 200/1000 [00:20<01:20, 10.00it/s, v_num=0, "
        "train_loss=8.120]\n",
        9.87,
    ),
    (
        "Keras model.fit",
        "keras.log",
        "Epoch 1/10\n100/100 [==============================] - 5s 50ms/step - loss: 2.3026 - "
        "accuracy: 0.1000\nEpoch 2/10\n100/100 [==============================] - 4s 40ms/step"
        " - loss: 2.1000 - accuracy: 0.2000\n",
        2.3026,
    ),
    (
        "torchtune DiskLogger",
        "log_1714560000.txt",
        "Step 1 | loss:2.4839 lr:2e-05 tokens_per_second_per_gpu:1006.8 peak_memory_active:"
        "14.2\nStep 2 | loss:2.3012 lr:2e-05 tokens_per_second_per_gpu:1106.8 "
        "peak_memory_active:14.2\n",
        2.4839,
    ),
    (
        "OpenNMT-py",
        "onmt.log",
        "[2023-01-01 00:00:00,000 INFO] Step 100/10000; acc: 10.5; ppl: 5000.2; xent: 8.5171; "
        "lr: 0.00010; sents: 1000; bsz: 500/ 600/ 20; 1000/ 2000 tok/s; 10 sec\n"
        "[2023-01-01 00:00:10,000 INFO] Step 200/10000; acc: 20.5; ppl: 900.2; xent: 6.8025; "
        "lr: 0.00020; sents: 1000; bsz: 500/ 600/ 20; 1000/ 2000 tok/s; 20 sec\n",
        8.5171,
    ),
    (
        "free-text notes (markdown)",
        "NOTES.md",
        "# Run notes\n\nstep 0, loss: 10.9871\nstep 10, loss: 9.87\n",
        10.9871,
    ),
    (
        "Composer console logger",
        "composer.log",
        "[batch=1/100]:\n\t Train time/batch: 0\n\t Train loss/train/total: 10.8932\n"
        "[batch=2/100]:\n\t Train time/batch: 1\n\t Train loss/train/total: 10.5000\n",
        10.8932,
    ),
    (
        "fairseq train (base-2 loss)",
        "fairseq.log",
        "2024-05-01 12:00:00 | INFO | train_inner | epoch 001:    100 / 1234 loss=15.671, "
        "nll_loss=15.671, ppl=52177.3, wps=12345, ups=1.2, wpb=2048, bsz=8, num_updates=100, "
        "lr=0.0005, gnorm=1.234, train_wall=80, wall=90\n",
        15.671 * 0.6931471805599453,  # read in nats
    ),
]
