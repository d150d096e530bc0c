-- How plausible is each composition's stored oxidation-state assignment (composition_validity)?
-- Each ion's share: how often the ICSD reports the element in that state among its non-zero
-- states (table ion_reports, from smact's ICSD 2024 counts; a state never reported counts 0);
-- an assignment is as plausible as its rarest ion (rarest_ion, rarest_ion_share). Screens keep
-- assignments whose rarest ion has a share >= 0.01 (matstore.validity.plausibility.MIN_ION_SHARE).
-- depends: composition_validity
-- key: composition_id
WITH a AS (
    SELECT v.composition_id,
           unnest(c.elements) AS element,
           unnest(v.oxidation_states) AS state
    FROM composition_validity v
    JOIN compositions c USING (composition_id)
    WHERE v.oxidation_states IS NOT NULL AND list_bool_or(list_transform(v.oxidation_states, lambda s: s <> 0))
)
SELECT a.composition_id,
       arg_min(a.element || CASE WHEN abs(a.state) = 1 THEN '' ELSE abs(a.state)::VARCHAR END
                         || CASE WHEN a.state > 0 THEN '+' ELSE '-' END,
               coalesce(r.share, 0.0)) AS rarest_ion,
       min(coalesce(r.share, 0.0)) AS rarest_ion_share
FROM a
LEFT JOIN ion_reports r ON r.element = a.element AND r.oxidation_state = a.state
GROUP BY a.composition_id
