"""A run on disk: checkpoints (`checkpoint`), metrics (`writers`), reading a finished run back
(`restore`), exporting it (`export`), and writing its files atomically and never through a
link (`files`).

    workdir/
      .lock              held by the live run (its pid)
      config.json        the resolved config (jaxconv.configs.base keys)
      config_changes.jsonl  what each resume changed in it
      checkpoints/<step> orbax: the training state, the data iterator's position, checksums
      metrics.jsonl      one JSON line per logging or evaluation step
      tensorboard/       the same scalars, and prediction images
      summary.json       the finished run's figures
      conv_plans.json    the CPU engine's choices (jaxconv.cpu.planning)
      profile/           a jax.profiler trace, when profile_steps asks for one
      report/            the HTML report (jaxconv.report)
"""
