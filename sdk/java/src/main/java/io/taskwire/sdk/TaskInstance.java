package io.taskwire.sdk;

/**
 * The task try a runtime runs: its task-instance id, DAG, task, run, map
 * index (-1 when the task is not mapped) and try number.
 */
public record TaskInstance(String id, String dagId, String taskId, String runId, int mapIndex, int tryNumber) {}
