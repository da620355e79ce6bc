"""The course's exercises as labs: ``model`` (the data), ``loader`` (exercise.yaml), ``checks`` (judging and
transcripts, pure), ``packets`` (a capture as a conversation, pure) and ``runner`` (a real lab: up, steps, down).

The exercises themselves live in ``exercises/`` at the top of the repository, one folder each.
"""
