"""The executor of every location's jobs, wherever the run was launched (the UI, a schedule,
automation, `mesh`): a process per step, as Dagster runs a job by default, but a run of one step
(one product with its checks) executes in the run's own process. A step process would cost a
fork server's start and a fork for nothing to run beside it: about a second a run, the larger
part of a small product's refresh. A run tagged IN_PROCESS_TAG="true" executes every step in its
process (`mesh materialize --in-process`)."""

from __future__ import annotations

import dagster as dg

IN_PROCESS_TAG = "mesh/in_process"
# Step processes fork from a server that imported Dagster, the platform and the engine once per
# run: a spawned step would import them again and spend seconds before doing any work.
# pyiceberg.io.pyarrow (pyarrow.dataset, pandas: 0.8 s) is what the catalog loads on its first
# table read.
PRELOAD = ["mesh_platform.publish", "pyiceberg.catalog.sql", "pyiceberg.io.pyarrow"]


class _OneStepInProcess(dg.Executor):
    def __init__(self, apart: dg.Executor, here: dg.Executor):
        self._apart, self._here = apart, here

    def execute(self, plan_context, execution_plan):
        one_step = len(execution_plan.step_keys_to_execute) == 1
        asked = plan_context.dagster_run.tags.get(IN_PROCESS_TAG) == "true"
        return (self._here if one_step or asked else self._apart).execute(plan_context, execution_plan)

    @property
    def retries(self):
        return self._apart.retries

    @property
    def step_dependency_config(self):
        return self._apart.step_dependency_config


@dg.executor(
    name="mesh_executor",
    config_schema=dg.multiprocess_executor.config_schema,
    requirements=dg.multiple_process_executor_requirements(),
)
def _mesh_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    apart = dg.multiprocess_executor.executor_creation_fn(init_context)
    here = dg.in_process_executor.executor_creation_fn(dg.InitExecutorContext(
        job=init_context.job, executor_def=dg.in_process_executor, instance=init_context.instance,
        executor_config={"retries": init_context.executor_config["retries"]},
    ))
    return _OneStepInProcess(apart, here)


EXECUTOR = _mesh_executor.configured({"start_method": {"forkserver": {"preload_modules": PRELOAD}}})
