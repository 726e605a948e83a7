"""Tabletop v2: textured household objects, physical lenses, photo-textured surroundings, and
expressions with zero, one or many targets said the way people say them.

* :mod:`.assets`: categories, their nouns, the models (textured wheels, recoloured primitives);
* :mod:`.cameras`: lenses, image shapes and poses; :mod:`.photo`: exposure, noise, motion blur;
* :mod:`.scene`: one rendered scene (:func:`~.scene.render_scene_v2`); :mod:`.meshcache`:
  render-ready copies of the models;
* :mod:`.targets`: which objects an expression refers to; :mod:`.wording`: how it is said;
* :mod:`.splits`, :mod:`.generate`: splits on disk; :mod:`.dataset`: Samples; :mod:`.stats`:
  `refseg data stats`.

Format and splits: docs/data-format.md; sources and licences: docs/data-card.md.
"""
