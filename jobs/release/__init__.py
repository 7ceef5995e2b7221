"""The paper's released dataset (`jifanz/stress_testing_model_spec`): its layout, export to it, import from it."""
