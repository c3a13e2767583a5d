package worker

// airflowTrigger maps the trigger of an Airflow DeferTask to what taskwire's
// triggerer runs.
func airflowTrigger(classpath string, kwargs map[string]any) (string, map[string]any) {
	return classpath, kwargs
}
