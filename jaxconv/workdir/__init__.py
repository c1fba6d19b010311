"""A run on disk: `config.json`, checkpoints (`checkpoint`), metrics (`writers`), and reading a
finished run back or exporting it (`restore`).

    workdir/
      config.json        the resolved config (jaxconv.configs.base keys)
      checkpoints/<step> orbax: the training state and the data iterator's position
      metrics.jsonl      one JSON line per logging or evaluation step
      tensorboard/       the same scalars, and prediction images
      summary.json       the finished run's figures
      conv_plans.json    the CPU engine's choices (jaxconv.cpu.planning)
      report/            the HTML report (jaxconv.report)
"""
