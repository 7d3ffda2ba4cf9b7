-- name: CreateIntakeSubmission :one
INSERT INTO public.intake_submissions (tenant_id, client_id, booking_id, full_name, email, phone, form_version, answers, consent_at)
VALUES (@tenant_id, sqlc.narg(client_id), sqlc.narg(booking_id), @full_name, sqlc.narg(email), sqlc.narg(phone),
        COALESCE(NULLIF(@form_version::text, ''), '1'), @answers::jsonb, CASE WHEN @consent::boolean THEN now() END)
RETURNING *;

-- name: ListIntakeSubmissionsByClient :many
SELECT * FROM public.intake_submissions
WHERE tenant_id = @tenant_id AND client_id = @client_id ORDER BY submitted_at DESC, id;
