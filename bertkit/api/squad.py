"""ktrain-style loading of SQuAD files for extractive QA: `text.qa_from_squad` → (train, val, preproc)."""

from __future__ import annotations

from typing import Any

from bertkit.api.preprocessor import Preprocessor
from bertkit.tasks.base import TaskData
from bertkit.tasks.qa import QaTask


def qa_from_squad(train_filepath: str, val_filepath: str | None = None, *, model_name: str,
                  maxlen: int = 384, doc_stride: int = 128, batch_size: int = 16,
                  skip_mismatched: bool = False, **settings: Any,
                  ) -> tuple[TaskData, TaskData | None, Preprocessor]:
    """Training (and validation) data of SQuAD v1.1/v2.0 JSON files, and their preprocessor.

    `settings` are the other `QaTask` fields (max_question_len, max_answer_len, null_answers,
    null_threshold, ...). Then: `model = preproc.get_model()`, `learner = get_learner(model,
    train_data=trn, val_data=val)`, `learner.fit_onecycle(...)`, `learner.validate()` (EM/F1),
    `predictor = get_predictor(learner.model, preproc)`, `predictor.predict(question, context)`.
    """
    preproc = Preprocessor(model_name, QaTask(maxlen=maxlen, doc_stride=doc_stride, **settings), batch_size)
    trn = preproc.preprocess_train(*QaTask.read(train_filepath, skip_mismatched=skip_mismatched))
    val = None
    if val_filepath is not None:
        val = preproc.preprocess_test(*QaTask.read(val_filepath, skip_mismatched=skip_mismatched))
    return trn, val, preproc
